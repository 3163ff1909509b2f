"""DPO (Rafailov et al., 2023) on preference pairs: the policy is trained to prefer each pair's preferred
answer over its rejected one, measured against reference log-probabilities that the starting model
gives before the first step. Computing them once, up front, means no second model is held in memory.
"""

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from worker.data import IGNORE, PreferencePair, batch_indices, collate_pairs, to_device, tokenize_pairs
from worker.distributed import Share, share_of
from worker.forward import logits
from worker.objectives.objective import Batch
from worker.training_run import TrainingRun


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


class PreferenceObjective:
    sequences_per_example = 2
    validation_interval: int | None = None

    def prepare(self, model: Any, tokenizer: Any, run: TrainingRun) -> None:
        self.model, self.tokenizer, self.run = model, tokenizer, run
        length = run.settings.context_length
        self.train_examples = tokenize_pairs(tokenizer, run.train_path, length)
        self.valid_examples = tokenize_pairs(tokenizer, run.valid_path, length) if run.valid_path else []
        # Before any step (and before a resumed job loads its trained state): the starting model is the reference.
        self.train_reference = self._reference_logps(self.train_examples)
        self.valid_reference = self._reference_logps(self.valid_examples)

    @property
    def train_count(self) -> int:
        return len(self.train_examples)

    @torch.no_grad()
    def _reference_logps(self, pairs: list[PreferencePair]) -> list[tuple[float, float]]:
        self.model.eval()
        reference = []
        for start in range(0, len(pairs), self.run.settings.batch_size):
            chunk = pairs[start : start + self.run.settings.batch_size]
            batch = to_device(collate_pairs(chunk, self.tokenizer.pad_token_id), self.run.device)
            logps = sequence_logps(logits(self.model, batch), batch["labels"]).tolist()
            reference += list(zip(logps[: len(chunk)], logps[len(chunk) :], strict=True))
        self.model.train()
        return reference

    def batches(self, epoch: int, share: Share) -> Iterator[Batch]:
        pairs = self.train_examples
        for indices in batch_indices(len(pairs), self.run.settings.batch_size, self.run.seed, epoch):
            sizes = [len(pairs[i].preferred.input_ids) + len(pairs[i].rejected.input_ids) for i in indices]
            part, fraction = share_of(indices, sizes, [1] * len(indices), share)
            tokens = sum(len(pairs[i].preferred.input_ids) + len(pairs[i].rejected.input_ids) for i in part)
            yield Batch(part, collate_pairs([pairs[i] for i in part], self.tokenizer.pad_token_id),
                        tokens if fraction else 0, fraction)

    def _pair_loss(self, tensors: dict[str, Any], reference: list[tuple[float, float]]):
        logps = sequence_logps(logits(self.model, tensors), tensors["labels"])
        reference_logps = torch.tensor([r[0] for r in reference] + [r[1] for r in reference], device=logps.device)
        return dpo_loss(logps, reference_logps, self.run.settings.beta)

    def loss(self, tensors: dict[str, Any], indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, rewards = self._pair_loss(tensors, [self.train_reference[i] for i in indices])
        return loss, {"train_loss": float(loss.detach()), **{f"train_{k}": v for k, v in rewards.items()}}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.valid_examples:
            return {}
        self.model.eval()
        totals: dict[str, float] = {}
        size = self.run.settings.batch_size
        for start in range(0, len(self.valid_examples), size):
            chunk = self.valid_examples[start : start + size]
            batch = to_device(collate_pairs(chunk, self.tokenizer.pad_token_id), self.run.device)
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
