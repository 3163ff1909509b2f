"""QLoRA against plain LoRA on the same Llama-architecture model, each as a real GXFT job (needs a CUDA GPU).

    python scripts/bench/qlora.py [--layers 16 --hidden 2048 --intermediate 8192] [--examples 256]
                                  [--tokens 512] [--batch-size 8] [--json bench-qlora.json]

The model is built from a config with random weights (about 1.0B parameters by default; no download)
and the tiny model's tokenizer, and registered with a real `gxft serve` and its worker. The same job
runs twice, one after the other, each on a fresh server and worker: plain bf16 LoRA, then
`"quantization": "nf4"` (4-bit base, bf16 LoRA). For each: training tokens/s (trained_tokens over the
time from the first finished step to `succeeded`, polled every 0.1 s), the GPU memory in use at its
peak (nvidia-smi every 0.1 s, less what was in use before the server started: the worker's CUDA
context included), and seconds from create to `succeeded`.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from compat_tests.server_process import ServerProcess  # noqa: E402

TINY_PATH = ROOT / "sample_data" / "models" / "tiny-chat"
MODEL_ID = "bench/llama-random"


def build_model(folder: Path, layers: int, hidden: int, intermediate: int) -> int:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TINY_PATH)
    config = LlamaConfig(
        vocab_size=32000, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, num_key_value_heads=max(1, hidden // 256), max_position_embeddings=4096,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        model: Any = LlamaForCausalLM(config)  # (Any: transformers' `to` is untyped behind a decorator)
        model = model.to(torch.bfloat16)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def training_rows(count: int, tokens: int) -> list[dict]:
    """Chat examples of about `tokens` tokens each, from the tiny model's tokenizer corpus."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TINY_PATH)
    words = (ROOT / "sample_data" / "models" / "tokenizer_corpus.txt").read_text().split()
    rows = []
    for index in range(count):
        start = (index * 37) % max(1, len(words) - 1)
        text, taken = [], 0
        while taken < tokens:
            chunk = words[start : start + 50] or words[:50]
            text += chunk
            taken += len(tokenizer(" ".join(chunk), add_special_tokens=False)["input_ids"])
            start = (start + 50) % len(words)
        rows.append({"messages": [{"role": "user", "content": f"Tell me story {index}."},
                                  {"role": "assistant", "content": " ".join(text)}]})
    return rows


class GPUMemory:
    """The most GPU memory in use (MiB) while sampling, from nvidia-smi."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def used() -> int:
        output = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True, check=True).stdout
        return int(output.split()[0])

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.used())
            time.sleep(0.1)

    def __enter__(self) -> "GPUMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_job(server_dir: Path, registry: Path, rows: list[dict], hyperparameters: dict) -> dict:
    """One job on a fresh server and worker, so that no other job's memory is counted."""
    idle = GPUMemory.used()
    server = ServerProcess(server_dir, env={"GXFT_MODELS_FILE": str(registry)})
    try:
        return _measure(server.client(), rows, hyperparameters, idle)
    finally:
        server.stop()


def _measure(client, rows: list[dict], hyperparameters: dict, idle: int) -> dict:
    while client.models.retrieve(MODEL_ID).model_extra["fine_tuning"]["quantization"] != ["nf4"]:
        time.sleep(0.2)  # the worker has not announced its GPU yet
    content = "".join(json.dumps(row) + "\n" for row in rows).encode()
    file = client.files.create(file=("bench.jsonl", content), purpose="fine-tune")
    file_id = client.files.wait_for_processing(file.id, poll_interval=0.1).id
    with GPUMemory() as memory:
        created = time.perf_counter()
        job = client.fine_tuning.jobs.create(model=MODEL_ID, training_file=file_id, seed=0,
                                             hyperparameters=hyperparameters)
        first_step = None
        while (job := client.fine_tuning.jobs.retrieve(job.id)).status not in ("succeeded", "failed", "cancelled"):
            if first_step is None and job.model_extra.get("trained_steps"):
                first_step = (time.perf_counter(), job.trained_tokens or 0)
            time.sleep(0.1)
        finished = time.perf_counter()
    if job.status != "succeeded":
        raise RuntimeError(f"job {job.id} {job.status}: {job.error}")
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert first_step is not None, "a succeeded job has trained steps"
    tokens_after_first = job.trained_tokens - first_step[1]
    return {
        "hyperparameters": hyperparameters,
        "steps": job.model_extra["total_steps"],
        "trained_tokens": job.trained_tokens,
        "tokens_per_second": tokens_after_first / (finished - first_step[0]),
        "peak_gpu_memory_mib": memory.peak - idle,
        "create_to_succeeded_s": finished - created,
        "final_train_loss": next(e.data["train_loss"] for e in events if e.type == "metrics"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--intermediate", type=int, default=8192)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, default=Path("bench-qlora.json"))
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("scripts/bench/qlora.py needs a CUDA GPU (QLoRA runs only there).", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gxft-bench-qlora-") as temp:
        temp_dir = Path(temp)
        parameters = build_model(temp_dir / "model", args.layers, args.hidden, args.intermediate)
        torch.cuda.empty_cache()
        registry = temp_dir / "registry.toml"
        registry.write_text(f'[[models]]\nid = "{MODEL_ID}"\npath = "{temp_dir / "model"}"\ncontext_length = 2048\n')
        rows = training_rows(args.examples, args.tokens)
        common = {"n_epochs": 1, "batch_size": args.batch_size, "lora_r": 16}
        results = {
            "lora_bf16": run_job(temp_dir / "data-lora", registry, rows, common),
            "qlora_nf4": run_job(temp_dir / "data-qlora", registry, rows, {**common, "quantization": "nf4"}),
        }
    report = {
        "machine": {"gpu": torch.cuda.get_device_name(0), "python": platform.python_version(),
                    "torch": torch.__version__},
        "model": {"parameters": parameters, "layers": args.layers, "hidden": args.hidden,
                  "intermediate": args.intermediate},
        "data": {"examples": args.examples, "tokens_per_example": args.tokens, "batch_size": args.batch_size},
        "results": results,
    }
    print(f"{parameters / 1e9:.2f}B-parameter Llama (random), {args.examples} examples of ~{args.tokens} tokens, "
          f"batch {args.batch_size}, one epoch, on {report['machine']['gpu']}")
    print(f"{'job':<10} {'tokens/s':>10} {'peak GPU MiB':>13} {'create→done s':>14} {'steps':>6}")
    for name, result in results.items():
        print(f"{name:<10} {result['tokens_per_second']:>10.0f} {result['peak_gpu_memory_mib']:>13} "
              f"{result['create_to_succeeded_s']:>14.1f} {result['steps']:>6}")
    args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
