"""Supervised fine-tuning, LoRA or full, as one readable loop (in the manner of a torchtune recipe).

    load tokenizer and model → wrap with LoRA → tokenise the files once → for each epoch: seeded
    batches → forward, backward, clip, step → per-step metrics → at the epoch's end: validation and
    a checkpoint → the final checkpoint.

The loop knows nothing of HTTP: it talks to `TrainingHooks` (implemented by worker/runner.py),
which report metrics, deliver checkpoints and pass on the user's orders (cancel, pause).
"""

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

from server.internal_protocol import JobSpec
from worker.data import IGNORE, TokenizedExample, batches, collate, steps_per_epoch, tokenize_file


class TrainingHooks(Protocol):
    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None: ...

    def order(self) -> str: ...

    def save_checkpoint(
        self, step: int, metrics: dict[str, float], weights_dir: Path, state_path: Path | None, final: bool,
        paused: bool,
    ) -> None: ...


class ModelLoadError(Exception):
    pass


@dataclass
class Outcome:
    status: str  # "completed", or the order that stopped the loop: "cancel", "pause", "stop"
    trained_tokens: int = 0
    metric_rows: list[dict[str, Any]] = field(default_factory=list)


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def load_model(model_path: str, device: torch.device, base_model: str):
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device)
    except Exception as exc:
        raise ModelLoadError(f"The base model {base_model!r} could not be loaded from {model_path}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def apply_lora(model, settings):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def forward(model, batch: dict[str, torch.Tensor]):
    # No KV cache: with one, transformers skips the packed-sequence masking that keeps packed
    # examples from attending to each other (see tests/test_packing.py).
    return model(**batch, use_cache=False)


def token_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    predicted = logits[:, :-1].argmax(-1)
    targets = labels[:, 1:]
    mask = targets != IGNORE
    return int((predicted[mask] == targets[mask]).sum()), int(mask.sum())


@torch.no_grad()
def evaluate(model, examples: list[TokenizedExample], batch_size: int, packing: bool, pad_id: int, device) -> dict:
    model.eval()
    total_loss, total_tokens, correct = 0.0, 0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in collate(examples[start : start + batch_size], packing, pad_id).items()}
        output = forward(model, batch)
        right, counted = token_accuracy(output.logits, batch["labels"])
        total_loss += float(output.loss) * counted
        total_tokens += counted
        correct += right
    model.train()
    return {"loss": total_loss / max(total_tokens, 1), "accuracy": correct / max(total_tokens, 1)}


class SupervisedRecipe:
    def __init__(self, spec: JobSpec, train_path: Path, valid_path: Path | None, workdir: Path):
        self.spec = spec
        self.settings = spec.settings
        self.train_path = train_path
        self.valid_path = valid_path
        self.workdir = workdir
        self.device = pick_device()

    def setup(self) -> None:
        seed_everything(self.spec.seed)
        self.tokenizer, model = load_model(self.spec.model_path, self.device, self.spec.base_model)
        if self.device.type == "cuda":
            model.gradient_checkpointing_enable()
            if self.settings.lora:
                model.enable_input_require_grads()  # checkpointed blocks need a grad path through frozen inputs
        if self.settings.lora:
            model = apply_lora(model, self.settings)
        self.model = model
        self.model.train()
        length = self.settings.context_length
        self.train_examples = tokenize_file(self.tokenizer, self.train_path, self.spec.data_format, length)
        self.valid_examples = (
            tokenize_file(self.tokenizer, self.valid_path, self.spec.data_format, length) if self.valid_path else []
        )
        self.steps_per_epoch = steps_per_epoch(len(self.train_examples), self.settings.batch_size)
        self.total_steps = self.steps_per_epoch * self.settings.n_epochs
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable, lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay
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
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["weights"], strict=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        self.trained_tokens = state["trained_tokens"]
        self.metric_rows = state["metric_rows"]

    def save_weights(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        if not self.settings.lora:
            self.tokenizer.save_pretrained(directory)
        return directory

    def _checkpoint(self, hooks: TrainingHooks, metrics: dict, final: bool, paused: bool = False) -> None:
        weights = self.save_weights(self.workdir / f"step-{self.step}")
        state = None if final else self.save_state(self.workdir / f"state-{self.step}.pt")
        hooks.save_checkpoint(self.step, metrics, weights, state, final, paused)

    def train(self, hooks: TrainingHooks) -> Outcome:
        settings = self.settings
        pad_id = self.tokenizer.pad_token_id
        rows = self.metric_rows
        start_epoch, skip = divmod(self.step, self.steps_per_epoch)
        for epoch in range(start_epoch, settings.n_epochs):
            epoch_batches = batches(self.train_examples, settings.batch_size, settings.packing, pad_id,
                                    self.spec.seed, epoch)
            for index, (batch, tokens) in enumerate(epoch_batches):
                if epoch == start_epoch and index < skip:
                    continue
                batch = {k: v.to(self.device) for k, v in batch.items()}
                output = forward(self.model, batch)
                output.loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.trained_tokens += tokens
                correct, counted = token_accuracy(output.logits.detach(), batch["labels"])
                metrics = {
                    "step": self.step,
                    "total_steps": self.total_steps,
                    "train_loss": float(output.loss.detach()),
                    "train_mean_token_accuracy": correct / max(counted, 1),
                }
                end_of_epoch = index == self.steps_per_epoch - 1
                if end_of_epoch and self.valid_examples:
                    valid = evaluate(self.model, self.valid_examples, settings.batch_size, settings.packing, pad_id,
                                     self.device)
                    metrics.update(valid_loss=valid["loss"], valid_mean_token_accuracy=valid["accuracy"],
                                   full_valid_loss=valid["loss"], full_valid_mean_token_accuracy=valid["accuracy"])
                rows.append({"step": self.step, "train_loss": metrics["train_loss"],
                             "train_accuracy": metrics["train_mean_token_accuracy"],
                             "valid_loss": metrics.get("valid_loss"),
                             "valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy")})
                hooks.step_done(self.step, self.total_steps, metrics, self.trained_tokens)
                if end_of_epoch:
                    self._checkpoint(hooks, metrics, final=self.step == self.total_steps)
                order = hooks.order()
                if order == "pause" and self.step < self.total_steps:
                    self._checkpoint(hooks, metrics, final=False, paused=True)
                    return Outcome("pause", self.trained_tokens, rows)
                if order in ("cancel", "stop"):
                    return Outcome(order, self.trained_tokens, rows)
        return Outcome("completed", self.trained_tokens, rows)

