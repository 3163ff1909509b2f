"""A batch through the model, as every objective runs it: bf16 matrix products on a GPU (float32 LoRA
weights are cast per product), float32 on a CPU, and never a KV cache."""

import contextlib
from contextlib import AbstractContextManager
from typing import Any

import torch

from worker.loss import next_token_loss


def mixed_precision(model: Any) -> AbstractContextManager[Any]:
    device = next(model.parameters()).device
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    # No KV cache: with one, transformers skips the packed-sequence masking that keeps packed
    # examples from attending to each other (see tests/test_packing.py).
    with mixed_precision(model):
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "target_positions")}
        return model(**inputs, use_cache=False).logits


def train_loss(model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean next-token loss over the batch's labelled tokens, and how many of them the model gets right."""
    with mixed_precision(model):
        return next_token_loss(model, batch)
