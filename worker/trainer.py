"""Fine-tuning, supervised, DPO or reinforcement, LoRA, QLoRA or full, as one readable loop (in the manner of a
torchtune recipe).

    the model ready to train (worker/model_setup.py) → the objective tokenises the files → for each
    epoch: the objective's seeded batches → loss → backward, clip, step → per-step metrics → at the
    epoch's end (or every `validation_interval` steps and at the last, where the objective sets one):
    validation; at the epoch's end a checkpoint → the final checkpoint.

What a method changes is its objective (worker/objectives/): the batches, the loss and its metrics,
the validation. The loop is the same for all, so every method pauses, resumes and survives a lost
worker the same way. It knows nothing of HTTP or of where its input came from: it takes a
`TrainingRun` and talks to `TrainingHooks` (worker/runner.py's for a job, gxft/local.py's for
`gxft train`), which report metrics, deliver checkpoints and pass on the user's orders.
"""

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from transformers import get_linear_schedule_with_warmup

from contract.internal_api import Order
from worker.data import steps_per_epoch, to_device
from worker.model_setup import starting_model
from worker.objectives import objective_for
from worker.training_run import TrainingRun

EMBEDDING_LAYERS = {"embed_tokens", "lm_head"}  # peft's names for them (EMBEDDING_LAYER_NAMES)


class TrainingHooks(Protocol):
    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None: ...

    def order(self) -> Order: ...

    def save_checkpoint(
        self, step: int, metrics: dict[str, float], weights_dir: Path, state_path: Path | None, final: bool,
        paused: bool,
    ) -> Order: ...


@dataclass
class TrainingResult:
    status: Literal["completed", "pause", "stop"]  # "completed", or the order that stopped the loop
    trained_tokens: int = 0
    metric_rows: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    def __init__(self, run: TrainingRun):
        self.run = run
        self.settings = run.settings
        self.objective = objective_for(run)

    def setup(self) -> None:
        seed_everything(self.run.seed)
        self.tokenizer, self.model = starting_model(self.run, self.objective.sequences_per_example)
        self.model.train()
        self.objective.prepare(self.model, self.tokenizer, self.run)
        self.steps_per_epoch = steps_per_epoch(self.objective.train_count, self.settings.batch_size)
        self.total_steps = self.steps_per_epoch * self.settings.n_epochs
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable, lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay,
            fused=self.run.device.type == "cuda",
        )
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, math.ceil(self.settings.warmup_ratio * self.total_steps), self.total_steps
        )
        self.step = 0
        self.trained_tokens = 0
        self.metric_rows: list[dict[str, Any]] = []

    # Resumable state: trainable weights, optimizer, schedule and position.

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        names = {name for name, p in self.model.named_parameters() if p.requires_grad}
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items() if k in names}

    def save_state(self, path: Path) -> Path:
        torch.save(
            {
                "step": self.step,
                "trained_tokens": self.trained_tokens,
                "metric_rows": self.metric_rows,
                "weights": self._trainable_state(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            },
            path,
        )
        return path

    def load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.run.device, weights_only=True)
        self.model.load_state_dict(state["weights"], strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.trained_tokens = state["trained_tokens"]
        self.metric_rows = state["metric_rows"]

    def save_weights(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        if not self.settings.lora:
            self.model.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
            return directory
        for adapter in self.model.peft_config.values():
            # Name the base model by its registry id, not by this machine's folder, so that the adapter
            # loads elsewhere (peft, vLLM) with that id mapped to wherever the model lives there.
            adapter.base_model_name_or_path = self.run.model_name
        # peft's default ("auto") asks the hub whether the base model's vocabulary changed; GXFT never
        # resizes it, so the embeddings are saved only when the adapter targets them.
        targets = set(self.settings.lora_target_modules or ())
        self.model.save_pretrained(directory, save_embedding_layers="auto" if targets & EMBEDDING_LAYERS else False)
        return directory

    def _checkpoint(self, hooks: TrainingHooks, metrics: dict, final: bool, paused: bool = False) -> Order:
        weights = self.save_weights(self.run.workdir / f"step-{self.step}")
        state = None if final else self.save_state(self.run.workdir / f"state-{self.step}.pt")
        return hooks.save_checkpoint(self.step, metrics, weights, state, final, paused)

    def train(self, hooks: TrainingHooks) -> TrainingResult:
        settings, objective = self.settings, self.objective
        rows = self.metric_rows
        start_epoch, skip = divmod(self.step, self.steps_per_epoch)
        for epoch in range(start_epoch, settings.n_epochs):
            for index, batch in enumerate(objective.batches(epoch)):
                if epoch == start_epoch and index < skip:
                    continue
                loss, step_metrics = objective.loss(to_device(batch.tensors, self.run.device), batch.indices)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.trained_tokens += batch.tokens
                metrics = {"step": self.step, "total_steps": self.total_steps, **step_metrics}
                end_of_epoch = index == self.steps_per_epoch - 1
                interval = objective.validation_interval
                if (self.step % interval == 0 or self.step == self.total_steps) if interval else end_of_epoch:
                    metrics.update(objective.validate())
                rows.append(objective.metric_row(metrics))
                hooks.step_done(self.step, self.total_steps, metrics, self.trained_tokens)
                if end_of_epoch:
                    self._checkpoint(hooks, metrics, final=self.step == self.total_steps)
                order = hooks.order()
                if order == "pause" and self.step < self.total_steps:
                    # Resumed while the checkpoint was saved, the job goes on here, from this very step.
                    if self._checkpoint(hooks, metrics, final=False, paused=True) == "pause":
                        return TrainingResult("pause", self.trained_tokens, rows)
                elif order == "stop":
                    return TrainingResult("stop", self.trained_tokens, rows)
        return TrainingResult("completed", self.trained_tokens, rows)
