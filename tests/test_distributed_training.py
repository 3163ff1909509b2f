"""The one training loop over two processes (torch.distributed, gloo on the CPU) equals it in one: the same
per-step losses at the same global batch, the same final weights, for LoRA (DDP) and full fine-tuning
(FSDP2); and a run paused on two processes resumes on one, and the other way round, to the same weights.

Ten chat examples of uneven length in batches of four, so that the last batch of each epoch (two examples)
and the deal of examples between ranks are both exercised, with packing on and off."""

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from compat_tests.conftest import MEASUREMENTS
from contract.training_settings import TrainingSettings
from worker import distributed
from worker.distributed import Share, split_batch
from worker.trainer import Trainer
from worker.training_run import TrainingRun

TINY = Path(__file__).resolve().parent.parent / "sample_data" / "models" / "tiny-chat"
EPOCHS = 2


class Recorder:
    """The loop's hooks: every step's loss; weights and state kept where the test can read them."""

    def __init__(self, keep: Path, leader: bool, pause_at: int | None = None):
        self.keep = keep
        self.leader = leader
        self.pause_at = pause_at
        self.losses: list[float] = []
        self.tokens = 0
        self.step = 0

    def step_done(self, step, total_steps, metrics, trained_tokens) -> None:
        self.losses.append(metrics["train_loss"])
        self.tokens = trained_tokens
        self.step = step

    def order(self):
        return "pause" if self.step == self.pause_at else "continue"

    def save_checkpoint(self, step, metrics, weights_dir, state_path, final, paused):
        if self.leader:  # rank 0 alone writes, and delivers
            weights_dir.rename(self.keep / ("final" if final else f"step-{step}"))
        if state_path is not None:  # (rank 0's alone)
            state_path.rename(self.keep / "state.pt")
        return "pause" if paused else "continue"


def _examples(path: Path) -> Path:
    lines = []
    for i in range(10):
        question = "Tell me about item " + " and ".join(str(n) for n in range(i % 4 + 1))
        lines.append({"messages": [{"role": "user", "content": question},
                                   {"role": "assistant", "content": f"Item {i} is " + "very " * (i % 3) + "good."}]})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _run(folder: Path, lora: bool, packing: bool) -> TrainingRun:
    settings = TrainingSettings(
        n_epochs=EPOCHS, batch_size=4, learning_rate=1e-3, learning_rate_multiplier=1.0, warmup_ratio=0.0,
        weight_decay=0.0, lora=lora, lora_r=8, lora_alpha=16, lora_dropout=0.0, packing=packing,
        max_grad_norm=1.0, context_length=256,
    )
    return TrainingRun(method="supervised", model_path=str(TINY), model_name="gxft/tiny-chat",
                       train_path=_examples(folder / "train.jsonl"), valid_path=None, data_format="chat", seed=3,
                       settings=settings, workdir=folder, device=torch.device("cpu"))


def _train(share: Share, folder: Path, lora: bool, packing: bool, pause_at: int | None, resume: bool) -> None:
    trainer = Trainer(_run(folder, lora, packing), share)
    trainer.setup()
    if resume:
        trainer.load_state(folder / "state.pt")
    recorder = Recorder(folder, share.leader, pause_at)
    result = trainer.train(recorder)
    if share.leader:
        torch.save({"losses": recorder.losses, "tokens": recorder.tokens, "status": result.status},
                   folder / ("resumed.pt" if resume else "run.pt"))


def _rank(rank: int, world: int, port: int, *args) -> None:
    distributed.start(Share(rank, world), "127.0.0.1", port)
    try:
        _train(Share(rank, world), *args)
    finally:
        distributed.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train(world: int, folder: Path, lora: bool, packing: bool = True, pause_at: int | None = None,
          resume: bool = False) -> dict:
    folder.mkdir(exist_ok=True)
    args = (folder, lora, packing, pause_at, resume)
    if world == 1:
        _train(Share(), *args)
    else:
        mp.start_processes(_rank, args=(world, _free_port(), *args), nprocs=world, start_method="spawn")
    return torch.load(folder / ("resumed.pt" if resume else "run.pt"))


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    name = "adapter_model.safetensors" if (folder / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(folder / name)


def _assert_same_weights(one: Path, two: Path) -> float:
    """The largest difference of a weight, relative to the largest weight of its tensor. (Adam divides each
    update by the gradient's running scale, so float rounding in a near-zero gradient moves a weight by up
    to about a learning rate's worth: the bound is relative, not exact.)"""
    first, second = _weights(one), _weights(two)
    assert first.keys() == second.keys()
    largest = max(float((first[k] - second[k]).abs().max() / first[k].abs().max().clamp(min=1e-12)) for k in first)
    assert largest < 1e-3
    return largest


def test_split_batch_deals_examples_evenly_by_count_and_tokens():
    parts = split_batch([7, 3, 9, 1, 4], [100, 10, 60, 50, 5], 2)
    assert sorted(parts[0] + parts[1]) == [1, 3, 4, 7, 9]
    assert {len(part) for part in parts} == {2, 3}
    sizes = dict(zip([7, 3, 9, 1, 4], [100, 10, 60, 50, 5], strict=True))
    assert sorted(sum(sizes[i] for i in part) for part in parts) == [110, 115]
    assert split_batch([5, 2], [1, 9], 1) == [[5, 2]]


@pytest.mark.parametrize("lora", [True, False], ids=["lora-ddp", "full-fsdp2"])
def test_two_processes_train_as_one(tmp_path, lora):
    one = train(1, tmp_path / "one", lora)
    two = train(2, tmp_path / "two", lora)
    assert len(one["losses"]) == len(two["losses"]) == EPOCHS * 3
    relative = max(abs(a - b) / abs(a) for a, b in zip(one["losses"], two["losses"], strict=True))
    assert relative < 1e-4, (one["losses"], two["losses"])
    assert one["tokens"] == two["tokens"]  # each token counted once
    largest = _assert_same_weights(tmp_path / "one" / "final", tmp_path / "two" / "final")
    MEASUREMENTS.append(f"{'LoRA with DDP' if lora else 'full with FSDP2'}, 2 processes against 1 over "
                       f"{len(one['losses'])} steps: largest relative loss difference {relative:.1e}, "
                       f"largest relative weight difference {largest:.1e}")


def test_unpacked_batches_split_alike(tmp_path):
    one = train(1, tmp_path / "one", lora=True, packing=False)
    two = train(2, tmp_path / "two", lora=True, packing=False)
    relative = max(abs(a - b) / abs(a) for a, b in zip(one["losses"], two["losses"], strict=True))
    assert relative < 1e-4, (one["losses"], two["losses"])


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2)])
def test_a_run_paused_on_some_processes_resumes_on_others(tmp_path, before, after):
    whole = train(1, tmp_path / "whole", lora=False)
    paused = train(before, tmp_path / "paused", lora=False, pause_at=2)
    assert paused["status"] == "pause" and len(paused["losses"]) == 2
    resumed = train(after, tmp_path / "paused", lora=False, resume=True)
    assert resumed["status"] == "completed"
    losses = paused["losses"] + resumed["losses"]
    assert max(abs(a - b) / abs(a) for a, b in zip(whole["losses"], losses, strict=True)) < 1e-4
    _assert_same_weights(tmp_path / "whole" / "final", tmp_path / "paused" / "final")
