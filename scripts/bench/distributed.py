"""Full fine-tuning (FSDP2) and LoRA (DDP) over N processes against one process, side by side: seconds per
step and each rank's peak memory while it trains.

    python scripts/bench/distributed.py [--model tiny|100m|1b] [--procs 2] [--steps 4] [--batch-size 8]
                                        [--tokens 256] [--runs full,lora] [--json bench-distributed.json]

The model is the tiny model or a Llama built from a config with random weights (no download); the data
is synthetic chat of mixed lengths. The one-process run and the N-process run use the same global batch
and seed. Peak memory is each process's resident high-water mark, reset once the model, optimizer and
data are ready (Linux's /proc/self/clear_refs), so it counts what training holds: weights, gradients,
Adam's state and activations, not the whole model that every rank loads before it is sharded. Seconds
per step leave out the first step (warm-up). On a CPU the ranks share its cores, so N processes are no
faster there; the figure that matters on a CPU is the memory.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.bench.common import TINY_PATH, build_llama, machine, mixed_length_rows, write_jsonl  # noqa: E402


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


class _Clock:
    """The loop's hooks: the time of each step, and the peak memory before the epoch's checkpoint (which
    gathers the whole model to rank 0: a cost of saving, not of training); checkpoints are dropped."""

    def __init__(self):
        self.times: list[float] = []
        self.peak_bytes = 0

    def step_done(self, step, total_steps, metrics, trained_tokens) -> None:
        self.times.append(time.perf_counter())
        self.peak_bytes = _peak_rss_bytes()

    def order(self):
        return "continue"

    def save_checkpoint(self, *args, **kwargs):
        return "continue"


def _measure(rank: int, world: int, port: int, model: str, data: str, lora: bool, steps: int, batch_size: int,
             tokens: int, results: str) -> None:
    import torch

    from contract.training_settings import TrainingSettings
    from worker import distributed
    from worker.distributed import Share
    from worker.trainer import Trainer
    from worker.training_run import TrainingRun

    share = Share(rank, world)
    if world > 1:
        distributed.start(share, "127.0.0.1", port)
    settings = TrainingSettings(
        n_epochs=1, batch_size=batch_size, learning_rate=1e-4, learning_rate_multiplier=1.0, warmup_ratio=0.0,
        weight_decay=0.0, lora=lora, lora_r=8, lora_alpha=16, lora_dropout=0.0, packing=True, max_grad_norm=1.0,
        context_length=tokens,
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-rank{rank}-"))
    trainer = Trainer(TrainingRun(method="supervised", model_path=model, model_name="bench", train_path=Path(data),
                                  valid_path=None, data_format="chat", seed=0, settings=settings, workdir=workdir,
                                  device=torch.device("cpu")), share)
    trainer.setup()
    trainer.total_steps = steps  # the schedule's length does not matter here; the loop stops at the epoch's end
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    clock = _Clock()
    started = time.perf_counter()
    trainer.train(clock)
    seconds = [b - a for a, b in zip([started, *clock.times], clock.times, strict=False)][1:]
    Path(results, f"rank{rank}.json").write_text(json.dumps(
        {"seconds_per_step": sum(seconds) / len(seconds), "peak_bytes": clock.peak_bytes}))
    if world > 1:
        distributed.stop()


def run(world: int, *arguments) -> list[dict]:
    import torch.multiprocessing as mp

    from worker.rank_processes import free_port

    results = tempfile.mkdtemp(prefix="bench-distributed-")
    mp.start_processes(_measure, args=(world, free_port(), *arguments, results), nprocs=world, start_method="spawn")
    return [json.loads(Path(results, f"rank{rank}.json").read_text()) for rank in range(world)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", choices=["tiny", "100m", "1b"])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--runs", default="full,lora", help="which of full (FSDP2) and lora (DDP) to run")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-distributed-model-"))
    model = str(TINY_PATH) if args.model == "tiny" else (build_llama(folder, args.model) and str(folder))
    examples = args.steps * args.batch_size
    data = str(write_jsonl(mixed_length_rows(examples, args.tokens // 4, args.tokens, seed=1), folder / "train.jsonl"))
    report = {"machine": machine(), "model": args.model, "procs": args.procs, "steps": args.steps,
              "batch_size": args.batch_size, "runs": {}}
    runs = {"full": ("full, FSDP2", False), "lora": ("LoRA, DDP", True)}
    for name, lora in (runs[run] for run in args.runs.split(",")):
        one = run(1, model, data, lora, args.steps, args.batch_size, args.tokens)[0]
        many = run(args.procs, model, data, lora, args.steps, args.batch_size, args.tokens)
        largest = max(rank["peak_bytes"] for rank in many)
        report["runs"][name] = {"one_process": one, "ranks": many,
                                "peak_memory_per_rank_ratio": largest / one["peak_bytes"],
                                "step_time_ratio": many[0]["seconds_per_step"] / one["seconds_per_step"]}
        print(f"{name}: 1 process {one['seconds_per_step']:.3f} s/step, {one['peak_bytes'] / 2**20:.0f} MiB peak; "
              f"{args.procs} processes {many[0]['seconds_per_step']:.3f} s/step, "
              f"{largest / 2**20:.0f} MiB peak per rank ({largest / one['peak_bytes']:.2f}×)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
