"""Fine-tuning, supervised or DPO, LoRA, QLoRA or full, as one readable loop (in the manner of a torchtune recipe).

    load tokenizer and model (in 4 bits for QLoRA; from a fine-tuned model's weights when continuing)
    → wrap with LoRA → tokenise the files once → for each epoch: seeded batches → forward, loss,
    backward, clip, step → per-step metrics → at the epoch's end: validation and a checkpoint → the
    final checkpoint.

`SupervisedRecipe` trains on next-token loss. `PreferenceRecipe` changes only the data and the loss:
DPO (Rafailov et al., 2023) against reference log-probabilities computed once, before the first
step, from the starting weights, so no second model is held in memory.

The loop knows nothing of HTTP: it talks to `TrainingHooks` (implemented by worker/runner.py),
which report metrics, deliver checkpoints and pass on the user's orders (cancel, pause).
"""

import contextlib
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

from server.internal_protocol import JobSpec
from worker.data import (
    IGNORE, PreferencePair, TokenizedExample, batch_indices, collate, collate_pairs, steps_per_epoch, to_device,
    tokenize_file,
)
from worker import attention
from worker.loss import next_token_loss

# Gradient checkpointing trades a second forward pass for memory: used only when a step's activations,
# estimated at this many bytes per token, hidden unit and layer (Korthikanti et al. count 34 for a
# bf16 transformer layer, plus margin), would take more than half the GPU memory left after loading.
ACTIVATION_BYTES = 50


class TrainingHooks(Protocol):
    def step_done(self, step: int, total_steps: int, metrics: dict[str, float], trained_tokens: int) -> None: ...

    def order(self) -> str: ...

    def save_checkpoint(
        self, step: int, metrics: dict[str, float], weights_dir: Path, state_path: Path | None, final: bool,
        paused: bool,
    ) -> None: ...


class ModelLoadError(Exception):
    pass


class GPURequired(Exception):
    """The job asks for something only a CUDA GPU can do (QLoRA), and this worker has none."""


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


def load_model(model_path: str, device: torch.device, model_name: str, quantization: str | None = None):
    """Tokenizer and model from a folder; with quantization "nf4" the model's linear layers load in
    4 bits (bitsandbytes), frozen, ready for LoRA on top (QLoRA)."""
    if quantization is not None and device.type != "cuda":
        raise GPURequired('QLoRA (quantization "nf4") needs a CUDA GPU, and this worker has none.')
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        config = AutoConfig.from_pretrained(model_path)
        options = {"attn_implementation": attention.NAME} if attention.available(device, config) else {}
        if quantization is None:
            model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, **options).to(device)
        else:
            model = _load_4bit(model_path, device, dtype, options)
    except Exception as exc:
        raise ModelLoadError(f"The model {model_name!r} could not be loaded from {model_path}: {exc}") from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def _load_4bit(model_path: str, device: torch.device, compute_dtype: torch.dtype, options: dict):
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    model = AutoModelForCausalLM.from_pretrained(
        model_path, quantization_config=quantization, dtype=compute_dtype, device_map={"": device.index or 0}, **options
    )
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)


def apply_lora(model, settings):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )
    return compute_in_input_dtype(get_peft_model(model, config))


def compute_in_input_dtype(model):
    """peft keeps LoRA weights in float32 (so that small updates are not lost) and casts each layer's input
    up to match; under `mixed_precision` the products run in bf16 instead, so that cast is only a cost."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False
    return model


def mixed_precision(model):
    """bf16 matrix products on a GPU (float32 LoRA weights are cast per product); float32 on a CPU."""
    device = next(model.parameters()).device
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    # No KV cache: with one, transformers skips the packed-sequence masking that keeps packed
    # examples from attending to each other (see tests/test_packing.py).
    with mixed_precision(model):
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "target_positions")}
        return model(**inputs, use_cache=False).logits


def train_loss(model, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    with mixed_precision(model):
        return next_token_loss(model, batch)


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row: the summed log-probability of its labelled tokens (as TRL's DPOTrainer scores a completion)."""
    targets = labels[:, 1:]
    token_logps = -F.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), targets, ignore_index=IGNORE, reduction="none"
    )
    return token_logps.sum(-1)


def dpo_loss(
    policy_logps: torch.Tensor, reference_logps: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO's sigmoid loss over a batch laid out as [preferred…, rejected…], with its reward metrics."""
    rewards = beta * (policy_logps - reference_logps)
    preferred, rejected = rewards.chunk(2)
    loss = -F.logsigmoid(preferred - rejected).mean()
    preferred, rejected = preferred.detach(), rejected.detach()
    return loss, {
        "reward_margin": float((preferred - rejected).mean()),
        "reward_accuracy": float((preferred > rejected).float().mean()),
        "preferred_reward": float(preferred.mean()),
        "rejected_reward": float(rejected.mean()),
    }


@torch.no_grad()
def evaluate(model, examples: list[TokenizedExample], batch_size: int, packing: bool, pad_id: int, device) -> dict:
    model.eval()
    total_loss, total_tokens, correct = 0.0, 0, 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = to_device(collate(chunk, packing, pad_id, attention.padding_free(model)), device)
        loss, right = train_loss(model, batch)
        counted = len(batch["target_positions"])
        total_loss += float(loss) * counted
        total_tokens += counted
        correct += int(right)
    model.train()
    return {"loss": total_loss / max(total_tokens, 1), "accuracy": correct / max(total_tokens, 1)}


class SupervisedRecipe:
    def __init__(self, spec: JobSpec, train_path: Path, valid_path: Path | None, workdir: Path,
                 starting_dir: Path | None = None):
        self.spec = spec
        self.settings = spec.settings
        self.train_path = train_path
        self.valid_path = valid_path
        self.workdir = workdir
        self.starting_dir = starting_dir  # the files of spec.starting_weights, when the job continues a model
        self.device = pick_device()

    def setup(self) -> None:
        seed_everything(self.spec.seed)
        self.model = self._starting_model()
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
            trainable, lr=self.settings.learning_rate, weight_decay=self.settings.weight_decay,
            fused=self.device.type == "cuda",
        )
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, math.ceil(self.settings.warmup_ratio * self.total_steps), self.total_steps
        )
        self.step = 0
        self.trained_tokens = 0
        self.metric_rows: list[dict[str, Any]] = []

    def _starting_model(self):
        """The base model, or the fine-tuned one the job continues, ready to train (adapter or all weights)."""
        settings, starting = self.settings, self.spec.starting_weights
        full_start = starting is not None and not starting.adapter
        path = str(self.starting_dir) if full_start else self.spec.model_path
        name = starting.model if full_start else self.spec.base_model
        self.tokenizer, model = load_model(path, self.device, name, settings.quantization)
        if settings.quantization is None and self._activations_crowd_memory(model):
            model.gradient_checkpointing_enable()
            if settings.lora:
                model.enable_input_require_grads()  # checkpointed blocks need a grad path through frozen inputs
        if starting is not None and starting.adapter:
            from peft import PeftModel

            # Continue training that adapter, or fold it into the base and train every weight.
            model = PeftModel.from_pretrained(model, str(self.starting_dir), is_trainable=settings.lora)
            # (peft froze the base weights when it loaded the adapter for inference; unfreeze them.)
            return compute_in_input_dtype(model) if settings.lora else model.merge_and_unload().requires_grad_(True)
        return apply_lora(model, settings) if settings.lora else model

    def _activations_crowd_memory(self, model) -> bool:
        if self.device.type != "cuda":
            return False
        config = model.config.get_text_config()
        layers, hidden = getattr(config, "num_hidden_layers", None), getattr(config, "hidden_size", None)
        if not (layers and hidden):
            return True
        tokens = self.settings.batch_size * self.settings.context_length
        if self.spec.method == "dpo":
            tokens *= 2  # a preferred and a rejected sequence per example
        free, _ = torch.cuda.mem_get_info(self.device)
        return ACTIVATION_BYTES * tokens * hidden * layers > free / 2

    # What a method defines: its batches, its loss and metrics on one batch, its validation.

    def epoch_batches(self, epoch: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor], int]]:
        """The epoch's batches: the examples' indices, the batch, its count of real (non-pad) tokens."""
        for indices in batch_indices(len(self.train_examples), self.settings.batch_size, self.spec.seed, epoch):
            chosen = [self.train_examples[i] for i in indices]
            batch = collate(chosen, self.settings.packing, self.tokenizer.pad_token_id,
                            attention.padding_free(self.model))
            yield indices, batch, sum(len(e.input_ids) for e in chosen)

    def batch_loss(self, batch: dict[str, torch.Tensor], indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, correct = train_loss(self.model, batch)
        return loss, {"train_loss": float(loss.detach()),
                      "train_mean_token_accuracy": int(correct) / max(len(batch["target_positions"]), 1)}

    def validate(self) -> dict[str, float]:
        valid = evaluate(self.model, self.valid_examples, self.settings.batch_size, self.settings.packing,
                         self.tokenizer.pad_token_id, self.device)
        return {"valid_loss": valid["loss"], "valid_mean_token_accuracy": valid["accuracy"],
                "full_valid_loss": valid["loss"], "full_valid_mean_token_accuracy": valid["accuracy"]}

    @staticmethod
    def metric_row(metrics: dict[str, float]) -> dict[str, Any]:
        """The step's row of step_metrics.csv."""
        return {"step": metrics["step"], "train_loss": metrics["train_loss"],
                "train_accuracy": metrics["train_mean_token_accuracy"], "valid_loss": metrics.get("valid_loss"),
                "valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy")}

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
        rows = self.metric_rows
        start_epoch, skip = divmod(self.step, self.steps_per_epoch)
        for epoch in range(start_epoch, settings.n_epochs):
            for index, (indices, batch, tokens) in enumerate(self.epoch_batches(epoch)):
                if epoch == start_epoch and index < skip:
                    continue
                batch = to_device(batch, self.device)
                loss, step_metrics = self.batch_loss(batch, indices)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), settings.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                self.trained_tokens += tokens
                metrics = {"step": self.step, "total_steps": self.total_steps, **step_metrics}
                end_of_epoch = index == self.steps_per_epoch - 1
                if end_of_epoch and self.valid_examples:
                    metrics.update(self.validate())
                rows.append(self.metric_row(metrics))
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


class PreferenceRecipe(SupervisedRecipe):
    """DPO on preference pairs. Everything but the data, the loss and the metrics is the supervised recipe."""

    def setup(self) -> None:
        super().setup()
        # Before any step (and before a resumed job loads its trained state): the starting model is the reference.
        self.train_reference = self._reference_logps(self.train_examples)
        self.valid_reference = self._reference_logps(self.valid_examples)

    @torch.no_grad()
    def _reference_logps(self, pairs: list[PreferencePair]) -> list[tuple[float, float]]:
        self.model.eval()
        reference = []
        for start in range(0, len(pairs), self.settings.batch_size):
            chunk = pairs[start : start + self.settings.batch_size]
            batch = to_device(collate_pairs(chunk, self.tokenizer.pad_token_id), self.device)
            logps = sequence_logps(logits(self.model, batch), batch["labels"]).tolist()
            reference += list(zip(logps[: len(chunk)], logps[len(chunk) :]))
        self.model.train()
        return reference

    def epoch_batches(self, epoch: int) -> Iterator[tuple[list[int], dict[str, torch.Tensor], int]]:
        for indices in batch_indices(len(self.train_examples), self.settings.batch_size, self.spec.seed, epoch):
            chosen = [self.train_examples[i] for i in indices]
            tokens = sum(len(p.preferred.input_ids) + len(p.rejected.input_ids) for p in chosen)
            yield indices, collate_pairs(chosen, self.tokenizer.pad_token_id), tokens

    def _pair_loss(self, batch: dict[str, torch.Tensor], reference: list[tuple[float, float]]):
        logps = sequence_logps(logits(self.model, batch), batch["labels"])
        reference_logps = torch.tensor([r[0] for r in reference] + [r[1] for r in reference], device=logps.device)
        return dpo_loss(logps, reference_logps, self.settings.beta)

    def batch_loss(self, batch: dict[str, torch.Tensor], indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, rewards = self._pair_loss(batch, [self.train_reference[i] for i in indices])
        return loss, {"train_loss": float(loss.detach()), **{f"train_{k}": v for k, v in rewards.items()}}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        totals: dict[str, float] = {}
        size = self.settings.batch_size
        for start in range(0, len(self.valid_examples), size):
            chunk = self.valid_examples[start : start + size]
            batch = to_device(collate_pairs(chunk, self.tokenizer.pad_token_id), self.device)
            loss, rewards = self._pair_loss(batch, self.valid_reference[start : start + size])
            for name, value in {"loss": float(loss), **rewards}.items():
                totals[name] = totals.get(name, 0.0) + value * len(chunk)
        self.model.train()
        return {f"valid_{name}": total / len(self.valid_examples) for name, total in totals.items()}

    @staticmethod
    def metric_row(metrics: dict[str, float]) -> dict[str, Any]:
        return {"step": metrics["step"], "train_loss": metrics["train_loss"], "valid_loss": metrics.get("valid_loss"),
                **{k: metrics.get(k) for k in ("train_reward_margin", "train_reward_accuracy",
                                                "valid_reward_margin", "valid_reward_accuracy")}}


RECIPES = {"supervised": SupervisedRecipe, "dpo": PreferenceRecipe}
