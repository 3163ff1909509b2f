"""Reinforcement fine-tuning with a grader: GRPO (Shao et al., 2024), as TRL's GRPOTrainer computes it.

Each step takes a batch of prompts and, for each, samples a group of answers from the model being trained
(`samples_per_prompt`, which OpenAI's compute_multiplier scales). The grader scores every answer; an
answer's advantage is its reward against its group's, in the group's standard deviations, so only
answers that beat their siblings are pushed up and a prompt whose answers all score alike teaches nothing.
The loss is the clipped policy-ratio objective over the answers' tokens plus `beta` times a KL estimate
to the starting model, summed over tokens and divided by the batch's answer tokens (TRL's default "dapo"
normalisation, which does not favour short answers).

The hard parts, admitted: the samples come from the model in the worker, with transformers' `generate`
(no paged KV cache, so a step's sampling costs about as much as its training on a CPU); each batch is
sampled once and trained on once, so the policy ratio is 1 and its clipping never bites (TRL's default
too); and a LoRA run's reference is its base model with the adapter switched off, which for a job that
continues an adapter is the base, not the continued adapter.
"""

import copy
import time
from collections.abc import Iterator
from typing import Any

import torch

from grading.python_sandbox import PythonLimits
from grading.run import GradingTools, failure_text, grade
from grading.templates import Sample
from worker.data import DataError, Prompt, batch_indices, tokenize_prompts
from worker.distributed import Share
from worker.forward import mixed_precision
from worker.objectives.objective import Batch
from worker.training_run import TrainingRun

CLIP_EPSILON = 0.2  # TRL's and the GRPO paper's
ADVANTAGE_EPSILON = 1e-4  # TRL's: keeps a group with (almost) one reward from dividing by zero
SAMPLING_TEMPERATURE = 1.0


class GraderFailed(Exception):
    """Every answer of a batch failed to grade: training on all-zero rewards would teach nothing."""


class Sampled:
    """A batch of prompts, each with its group of answers: prompt rows (left-padded) beside answer rows."""

    def __init__(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                 completion_mask: torch.Tensor, texts: list[str]):
        self.prompt_ids, self.prompt_mask = prompt_ids, prompt_mask
        self.completion_ids, self.completion_mask = completion_ids, completion_mask
        self.texts = texts


def completion_logps(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, completion_ids: torch.Tensor,
                     completion_mask: torch.Tensor) -> torch.Tensor:
    """Per answer token, its log-probability under `model` after the prompt and the answer before it."""
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
    # Positions count real tokens only, so a left-padded row reads as it would alone (as generate placed it).
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    width = completion_ids.size(1)
    with mixed_precision(model):
        # Only the answer's places need logits: over a 50k vocabulary, the prompt's would cost most of the step.
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                       use_cache=False, logits_to_keep=width + 1).logits
    logits = logits[:, :-1].float() / SAMPLING_TEMPERATURE
    # log_softmax at the chosen token only: its logit less the log-sum-exp, without a vocabulary-wide copy.
    chosen = torch.gather(logits, 2, completion_ids.unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(logits, dim=-1)


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each reward against its group's mean, in the group's (sample) standard deviations."""
    groups = rewards.view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, keepdim=True)
    return ((groups - mean) / (std + ADVANTAGE_EPSILON)).view(-1)


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, reference_logps: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, beta: float,
              epsilon: float = CLIP_EPSILON) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO's loss over answer tokens (rows × tokens, `mask` marking real ones), with its KL and clip rate."""
    ratio = torch.exp(logps - old_logps)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
    per_token = -torch.min(ratio * advantages.unsqueeze(1), clipped * advantages.unsqueeze(1))
    mask = mask.to(per_token.dtype)
    tokens = mask.sum().clamp(min=1.0)
    kl = torch.zeros((), device=logps.device)
    if beta != 0.0 and reference_logps is not None:
        # The k3 estimator of KL(policy ‖ reference): unbiased, and never negative. Weighted by the policy
        # ratio (1 in value, not in gradient), its gradient is the unbiased reverse-KL one (DeepSeek-V3.2;
        # TRL's default, use_bias_correction_kl).
        per_token_kl = torch.exp(reference_logps - logps) - (reference_logps - logps) - 1
        per_token = per_token + beta * per_token_kl * ratio
        kl = (per_token_kl * mask).sum() / tokens
    loss = (per_token * mask).sum() / tokens
    clip_rate = (((ratio < 1 - epsilon) | (ratio > 1 + epsilon)).to(mask.dtype) * mask).sum() / tokens
    return loss, {"kl": float(kl.detach()), "clip_ratio": float(clip_rate)}


class ReinforcementObjective:
    def __init__(self, samples_per_prompt: int):
        self.validation_interval: int | None = None  # eval_interval, read in prepare
        self.group_size = samples_per_prompt
        # Each prompt's group goes through the model together (for the activation memory estimate).
        self.sequences_per_example = samples_per_prompt

    def prepare(self, model: Any, tokenizer: Any, run: TrainingRun) -> None:
        if run.grader is None:
            raise DataError("a reinforcement job needs a grader")
        self.model, self.tokenizer, self.run = model, tokenizer, run
        self.grader = run.grader
        settings = run.settings
        self.validation_interval = settings.eval_interval
        prompt_room = settings.context_length - settings.max_completion_tokens
        self.train_prompts = tokenize_prompts(tokenizer, run.train_path, prompt_room)
        self.valid_prompts = tokenize_prompts(tokenizer, run.valid_path, prompt_room) if run.valid_path else []
        self.tools = GradingTools(chat=run.grader_model, embedder=run.grader_embedder, python_limits=PythonLimits())
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = model.generation_config.eos_token_id
        self.stop_ids = torch.tensor(eos if isinstance(eos, list) else [eos if eos is not None else self.pad_id])
        # The reference is the starting model: with LoRA, the base under a switched-off adapter; with full
        # fine-tuning, a frozen copy taken now (before a resumed job loads its trained weights).
        self.reference = None
        if settings.beta != 0.0 and not settings.lora:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
        self.start_metrics = {f"{k}_start": v for k, v in self.validate().items()}

    @property
    def train_count(self) -> int:
        return len(self.train_prompts)

    def batches(self, epoch: int, share: Share) -> Iterator[Batch]:
        # One process only (the trainer refuses more): sampling and grading are not split between ranks.
        for indices in batch_indices(len(self.train_prompts), self.run.settings.batch_size, self.run.seed, epoch):
            # The tensors are made in `loss`: the answers are sampled there, from the model as it is then.
            tokens = sum(len(self.train_prompts[i].input_ids) for i in indices) * self.group_size
            yield Batch(indices, {}, tokens)

    @torch.no_grad()
    def _sample(self, prompts: list[Prompt], group_size: int) -> Sampled:
        rows = [prompt.input_ids for prompt in prompts for _ in range(group_size)]
        width = max(len(row) for row in rows)
        device = self.run.device
        prompt_ids = torch.tensor([[self.pad_id] * (width - len(row)) + row for row in rows], device=device)
        prompt_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], device=device)
        was_training = self.model.training
        self.model.eval()
        with mixed_precision(self.model):
            generated = self.model.generate(
                input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=True, temperature=SAMPLING_TEMPERATURE,
                top_p=1.0, top_k=0, max_new_tokens=self.run.settings.max_completion_tokens,
                pad_token_id=self.pad_id, eos_token_id=self.stop_ids.tolist(), use_cache=True,
            )
        self.model.train(was_training)
        completion_ids = generated[:, width:]
        # An answer ends with its first stop token (kept, so the model learns to stop); after it, padding.
        stops = torch.isin(completion_ids, self.stop_ids.to(completion_ids.device))
        first_stop = torch.where(stops.any(1), stops.int().argmax(1), completion_ids.size(1))
        positions = torch.arange(completion_ids.size(1), device=completion_ids.device)
        completion_mask = (positions.unsqueeze(0) <= first_stop.unsqueeze(1)).long()
        texts = [self.tokenizer.decode(ids[: int(end)], skip_special_tokens=True)
                 for ids, end in zip(completion_ids.tolist(), first_stop.tolist(), strict=True)]
        return Sampled(prompt_ids, prompt_mask, completion_ids, completion_mask, texts)

    def _rewards(self, prompts: list[Prompt], sampled: Sampled, group_size: int) -> tuple[torch.Tensor, dict]:
        items = [prompt.item for prompt in prompts for _ in range(group_size)]
        responses = grade(self.grader, [(Sample(output_text=text), item) for text, item in
                                        zip(sampled.texts, items, strict=True)], self.tools)
        rewards = torch.tensor([response.reward for response in responses])
        failures = [text for response in responses if (text := failure_text(response))]
        if len(failures) == len(responses):
            raise GraderFailed(f"the grader failed on every one of {len(responses)} answers, the first with "
                               f"{failures[0]}")
        stats: dict[str, float] = {"grading_errors": len(failures) / len(responses)}
        for name in responses[0].sub_rewards:
            stats[f"reward_{name}"] = sum(float(r.sub_rewards.get(name, 0.0)) for r in responses) / len(responses)
        return rewards, stats

    def _reference_logps(self, sampled: Sampled) -> torch.Tensor | None:
        if self.run.settings.beta == 0.0:
            return None
        tensors = (sampled.prompt_ids, sampled.prompt_mask, sampled.completion_ids, sampled.completion_mask)
        with torch.no_grad():
            if self.reference is not None:
                return completion_logps(self.reference, *tensors)
            with self.model.disable_adapter():
                return completion_logps(self.model, *tensors)

    def loss(self, tensors: dict[str, Any], indices: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        started = time.perf_counter()
        prompts = [self.train_prompts[i] for i in indices]
        sampled = self._sample(prompts, self.group_size)
        rewards, reward_stats = self._rewards(prompts, sampled, self.group_size)
        advantages = group_advantages(rewards, self.group_size).to(self.run.device)
        logps = completion_logps(self.model, sampled.prompt_ids, sampled.prompt_mask, sampled.completion_ids,
                                 sampled.completion_mask)
        reference = self._reference_logps(sampled)
        loss, stats = grpo_loss(logps, logps.detach(), reference, advantages, sampled.completion_mask,
                                self.run.settings.beta)
        metrics = {
            "train_loss": float(loss.detach()),
            "train_mean_reward": float(rewards.mean()),
            "train_reward_std": float(rewards.view(-1, self.group_size).std(dim=1).mean()),
            "train_kl": stats["kl"],
            "train_completion_tokens": float(sampled.completion_mask.sum(1).float().mean()),
            "train_samples_per_second": len(sampled.texts) / (time.perf_counter() - started),
            **{f"train_{name}": value for name, value in reward_stats.items()},
            **self.start_metrics,
        }
        self.start_metrics = {}  # said once, with the first step
        return loss, metrics

    def validate(self) -> dict[str, float]:
        """The mean reward of `eval_samples` answers per validation prompt, sampled with a fixed seed so that
        each validation draws alike and only the model differs."""
        if not self.valid_prompts:
            return {}
        samples = self.run.settings.eval_samples
        rewards: list[torch.Tensor] = []
        totals: dict[str, float] = {}
        with torch.random.fork_rng(devices=[self.run.device] if self.run.device.type == "cuda" else []):
            torch.manual_seed(self.run.seed)
            for start in range(0, len(self.valid_prompts), self.run.settings.batch_size):
                chunk = self.valid_prompts[start : start + self.run.settings.batch_size]
                sampled = self._sample(chunk, samples)
                chunk_rewards, stats = self._rewards(chunk, sampled, samples)
                rewards.append(chunk_rewards)
                for name, value in stats.items():
                    totals[name] = totals.get(name, 0.0) + value * len(chunk_rewards)
        every = torch.cat(rewards)
        return {"valid_mean_reward": float(every.mean()),
                **{f"valid_{name}": total / len(every) for name, total in totals.items()}}

    @staticmethod
    def metric_row(metrics: dict[str, float]) -> dict[str, Any]:
        row = {"step": metrics["step"], "train_loss": metrics["train_loss"],
               "train_mean_reward": metrics["train_mean_reward"], "train_kl": metrics["train_kl"],
               "valid_mean_reward": metrics.get("valid_mean_reward")}
        row.update({name: value for name, value in metrics.items()
                    if name.startswith(("train_reward_", "valid_reward_")) and name != "train_reward_std"})
        return row
