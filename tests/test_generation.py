"""The serving decode loop: a left-padded batch of rows decodes exactly as each row alone, as
transformers' own `generate` does; text is released whole and cut at stop sequences."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from server.serving.generation import Row, Sampler, generate
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


def test_batched_greedy_decoding_matches_transformers_generate():
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    prompts = ["Hello", "The capital of France is a city of many", "a b c d e f g h i j k l m n o p", "Why?"]
    rows = _rows(tokenizer, prompts, SamplingParams(temperature=0), max_new=24)
    texts = {index: "" for index in range(len(rows))}

    def on_step(step):
        for row, piece in step:
            texts[row.choice] += piece

    generate(model, rows, tokenizer.pad_token_id, CPU, mixed_adapters=False, on_step=on_step)
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
        generate(model, rows, tokenizer.pad_token_id, CPU, mixed_adapters=False, on_step=lambda step: None)
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

    def run(rows, mixed):
        generate(model, rows, tokenizer.pad_token_id, CPU, mixed_adapters=mixed, on_step=lambda step: None)
        return rows[0].generated

    mixed_rows = _rows(tokenizer, prompts, SamplingParams(temperature=0), max_new=12)
    for row, adapter in zip(mixed_rows, adapters, strict=True):
        row.adapter = adapter
    run(mixed_rows, mixed=True)
    outputs = {}
    for index, (prompt, adapter) in enumerate(zip(prompts, adapters, strict=True)):
        alone = _rows(tokenizer, [prompt], SamplingParams(temperature=0), max_new=12)
        if adapter == "__base__":
            with model.disable_adapter():
                outputs[index] = run(alone, mixed=False)
        else:
            model.set_adapter(adapter)
            outputs[index] = run(alone, mixed=False)
        assert mixed_rows[index].generated == outputs[index]
    assert outputs[0] != outputs[1]  # the adapters do change the answers
