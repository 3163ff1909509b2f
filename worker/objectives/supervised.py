"""Supervised fine-tuning: next-token loss on the tokens an example trains (assistant turns without
`weight: 0`, completions, texts), with packed or padded batches."""

from collections.abc import Iterator
from typing import Any

import torch

from worker import attention
from worker.data import TokenizedExample, batch_indices, collate, targets, to_device, tokenize_file
from worker.distributed import Share, share_of
from worker.forward import train_loss
from worker.objectives.objective import Batch
from worker.training_run import TrainingRun


class SupervisedObjective:
    sequences_per_example = 1
    validation_interval: int | None = None

    def prepare(self, model: Any, tokenizer: Any, run: TrainingRun) -> None:
        self.model, self.tokenizer, self.run = model, tokenizer, run
        length = run.settings.context_length
        self.train_examples = tokenize_file(tokenizer, run.train_path, run.data_format, length)
        self.valid_examples = (tokenize_file(tokenizer, run.valid_path, run.data_format, length)
                               if run.valid_path else [])

    @property
    def train_count(self) -> int:
        return len(self.train_examples)

    def batches(self, epoch: int, share: Share) -> Iterator[Batch]:
        settings = self.run.settings
        examples = self.train_examples
        for indices in batch_indices(len(examples), settings.batch_size, self.run.seed, epoch):
            part, fraction = share_of(indices, [len(examples[i].input_ids) for i in indices],
                                      [targets(examples[i]) for i in indices], share)
            chosen = [examples[i] for i in part]
            tensors = collate(chosen, settings.packing, self.tokenizer.pad_token_id, attention.padding_free(self.model))
            yield Batch(part, tensors, sum(len(e.input_ids) for e in chosen) if fraction else 0, fraction)

    def loss(self, tensors: dict[str, Any], indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, correct = train_loss(self.model, tensors)
        return loss, {"train_loss": float(loss.detach()),
                      "train_mean_token_accuracy": int(correct) / max(len(tensors["target_positions"]), 1)}

    def validate(self) -> dict[str, float]:
        if not self.valid_examples:
            return {}
        settings = self.run.settings
        valid = evaluate(self.model, self.valid_examples, settings.batch_size, settings.packing,
                         self.tokenizer.pad_token_id, self.run.device)
        return {"valid_loss": valid["loss"], "valid_mean_token_accuracy": valid["accuracy"],
                "full_valid_loss": valid["loss"], "full_valid_mean_token_accuracy": valid["accuracy"]}

    @staticmethod
    def metric_row(metrics: dict[str, float]) -> dict[str, Any]:
        return {"step": metrics["step"], "train_loss": metrics["train_loss"],
                "train_accuracy": metrics["train_mean_token_accuracy"], "valid_loss": metrics.get("valid_loss"),
                "valid_mean_token_accuracy": metrics.get("valid_mean_token_accuracy")}


@torch.no_grad()
def evaluate(model: Any, examples: list[TokenizedExample], batch_size: int, packing: bool, pad_id: int,
             device: torch.device) -> dict[str, float]:
    """Mean loss and token accuracy over `examples` (also `gxft evaluate`'s)."""
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
