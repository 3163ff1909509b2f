"""The serving decode loop: a left-padded batch of rows decodes exactly as each row alone, as
transformers' own `generate` does, also when rows join and leave it mid-way; text is released whole and
cut at stop sequences."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from server.serving.decoding_batch import DecodingBatch
from server.serving.generation import Row, Sampler
from server.serving.model_cache import LoadedModel
from server.serving.params import SamplingParams
from server.serving.text import TextAssembler

TINY = Path(__file__).resolve().parent.parent / "sample_data" / "models" / "tiny-chat"
CPU = torch.device("cpu")


def _rows(tokenizer, prompts: list[str], params: SamplingParams, max_new: int) -> list[Row]:
    sampler = Sampler(params, len(tokenizer), CPU)
    return [
        Row(owner=None, choice=index, prompt_ids=tokenizer(prompt, add_special_tokens=False).input_ids,
            adapter="__base__", sampler=sampler, text=TextAssembler(tokenizer, params.stop), max_new_tokens=max_new,
            eos_ids=frozenset({tokenizer.eos_token_id}))
        for index, prompt in enumerate(prompts)
    ]


def _batch(model, tokenizer) -> DecodingBatch:
    has_adapters = hasattr(model, "peft_config")
    loaded = LoadedModel(model=model, tokenizer=tokenizer, device=CPU, longest_token_bytes=1)
    if has_adapters:
        loaded.adapters.update({name: None for name in model.peft_config})
    return DecodingBatch(loaded)


def generate(model, tokenizer, rows: list[Row], on_step=lambda step: None) -> None:
    """Run rows to their ends, all joining at once."""
    batch = _batch(model, tokenizer)
    step = batch.join(rows)
    while True:
        on_step(step)
        batch.remove([row for row in batch.rows if row.finish_reason is not None])
        if not batch.rows:
            return
        step = batch.step()


def test_batched_greedy_decoding_matches_transformers_generate():
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    prompts = ["Hello", "The capital of France is a city of many", "a b c d e f g h i j k l m n o p", "Why?"]
    rows = _rows(tokenizer, prompts, SamplingParams(temperature=0), max_new=24)
    texts = {index: "" for index in range(len(rows))}

    def on_step(step):
        for row, piece in step:
            texts[row.choice] += piece

    generate(model, tokenizer, rows, on_step)
    for row, prompt in zip(rows, prompts, strict=True):
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        expected = model.generate(**ids, max_new_tokens=24, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id)[0, ids["input_ids"].shape[1]:].tolist()
        assert row.generated == expected
        assert texts[row.choice] == tokenizer.decode(expected, skip_special_tokens=True)
        assert row.finish_reason == ("stop" if expected[-1] == tokenizer.eos_token_id else "length")


def test_seeded_sampling_is_reproducible_and_rows_differ():
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY).eval()

    def run(seed: int) -> list[list[int]]:
        rows = _rows(tokenizer, ["Tell me"] * 3, SamplingParams(temperature=1.0, top_p=0.9, seed=seed), max_new=10)
        generate(model, tokenizer, rows)
        return [row.generated for row in rows]

    first = run(3)
    assert first == run(3)
    assert first != run(4)
    assert len({tuple(tokens) for tokens in first}) > 1


class CharTokenizer:
    """One token per UTF-8 byte: a character can span tokens, as with byte-level BPE."""

    def decode(self, ids, skip_special_tokens=True):
        return bytes(ids).decode("utf-8", errors="replace")


def _feed(assembler: TextAssembler, text: str) -> list[str]:
    pieces = []
    for byte in text.encode():
        pieces.append(assembler.add(byte))
        if assembler.stopped:
            break
    return pieces


def test_text_is_released_only_in_whole_characters():
    assembler = TextAssembler(CharTokenizer(), ())
    pieces = _feed(assembler, "né ☃!")
    assert "".join(pieces) + assembler.finish() == "né ☃!"
    assert all("\ufffd" not in piece for piece in pieces)


def test_stop_sequences_cut_the_text_and_are_never_streamed():
    assembler = TextAssembler(CharTokenizer(), ("STOP", "XY"))
    pieces = _feed(assembler, "hello STOP and more")
    assert assembler.stopped and "".join(pieces) == "hello "
    assert not any("S" in piece for piece in pieces)
    # A partial match that turns out not to be a stop sequence is released after all.
    assembler = TextAssembler(CharTokenizer(), ("STOP",))
    pieces = _feed(assembler, "STAR")
    assert "".join(pieces) + assembler.finish() == "STAR" and not assembler.stopped
    # The earliest of several stop sequences wins.
    assembler = TextAssembler(CharTokenizer(), ("b", "ab"))
    assert "".join(_feed(assembler, "xxab")) == "xx"


def test_mixed_adapter_batch_matches_each_adapter_alone():
    from peft import LoraConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    base = AutoModelForCausalLM.from_pretrained(TINY)
    config = LoraConfig(r=4, lora_alpha=64, target_modules="all-linear", init_lora_weights=False)
    torch.manual_seed(0)
    model = get_peft_model(base, config, adapter_name="first")
    model.add_adapter("second", config)
    model.eval()
    adapters = ["__base__", "first", "second", "first"]  # names peft does not mistake for its prefix
    prompts = ["Hello there", "Hello there", "Hi", "The capital of France"]

    def run(rows):
        generate(model, tokenizer, rows)
        return rows[0].generated

    mixed_rows = _rows(tokenizer, prompts, SamplingParams(temperature=0), max_new=12)
    for row, adapter in zip(mixed_rows, adapters, strict=True):
        row.adapter = adapter
    run(mixed_rows)
    outputs = {}
    for index, (prompt, adapter) in enumerate(zip(prompts, adapters, strict=True)):
        alone = _rows(tokenizer, [prompt], SamplingParams(temperature=0), max_new=12)
        alone[0].adapter = adapter
        outputs[index] = run(alone)
        assert mixed_rows[index].generated == outputs[index]
    assert outputs[0] != outputs[1]  # the adapters do change the answers


def _alone(model, tokenizer, prompt: str, max_new: int) -> list[int]:
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
    return model.generate(**ids, max_new_tokens=max_new, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id)[0, ids["input_ids"].shape[1]:].tolist()


def test_rows_joining_leaving_and_preempted_mid_way_decode_as_alone():
    """Continuous batching: rows of other lengths join a running batch between steps, short ones leave
    early, and a preempted row rejoins with the tokens it had generated; each decodes exactly as it would
    alone."""
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    greedy = SamplingParams(temperature=0)
    long_row, = _rows(tokenizer, ["a b c d e f g h i j k l m n o p q r s"], greedy, max_new=30)
    batch = _batch(model, tokenizer)
    batch.join([long_row])
    joiners = {}
    for step_number in range(29):
        if step_number == 3:  # a shorter prompt than the running row's, with a short budget
            joiners["short"], = _rows(tokenizer, ["Hi"], greedy, max_new=4)
            batch.join([joiners["short"]])
        if step_number == 6:  # a longer prompt than everything cached so far
            joiners["long"], = _rows(tokenizer, ["The capital of France is a city of many " * 4], greedy, max_new=12)
            batch.join([joiners["long"]])
        if step_number == 9:  # preempted, then back three steps later
            batch.remove([joiners["long"]])
        if step_number == 12:
            batch.join([joiners["long"]])
        batch.remove([row for row in batch.rows if row.finish_reason is not None])
        if long_row in batch.rows:
            batch.step()
    assert long_row.generated == _alone(model, tokenizer, "a b c d e f g h i j k l m n o p q r s", 30)
    assert joiners["short"].generated == _alone(model, tokenizer, "Hi", 4)
    assert joiners["long"].generated == _alone(model, tokenizer, "The capital of France is a city of many " * 4, 12)
    assert joiners["long"].finish_reason == "length"


def test_logprobs_are_the_models_own_log_softmax():
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    row, = _rows(tokenizer, ["Hello there"], SamplingParams(temperature=1.0, seed=1), max_new=6)
    row.top_logprobs = 3
    row.eos_ids = frozenset()
    generate(model, tokenizer, [row])
    ids = torch.tensor([row.prompt_ids + row.generated])
    with torch.no_grad():
        expected = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    for place, (token, entry) in enumerate(zip(row.generated, row.logprobs, strict=True)):
        position = len(row.prompt_ids) - 1 + place
        assert entry.token == tokenizer.decode([token])
        assert abs(entry.logprob - float(expected[position, token])) < 1e-4
        top = expected[position].topk(3)
        assert [t for t, _ in entry.top] == [tokenizer.decode([int(i)]) for i in top.indices]
        assert all(abs(lp - float(v)) < 1e-4 for (_, lp), v in zip(entry.top, top.values, strict=True))
