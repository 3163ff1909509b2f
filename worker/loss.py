"""Next-token loss without the whole (tokens × vocabulary) logits: the output head runs only on the
positions that have a label, a chunk at a time.

Each chunk's logits give its loss and, at once, their own gradient; the gradients with respect to the
hidden states (and to the head's weight, when it trains) are kept and the logits dropped, so backward
has nothing to recompute (the approach of Liger's fused linear cross-entropy). With a 128k vocabulary
and a few thousand tokens a step, the float32 logits alone would take gigabytes.
"""

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 26  # logits per chunk: 256 MiB in float32

# Models whose logits are more than the head's product (scaled, soft-capped) go the plain way.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier",
                     "lm_head_multiplier")


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, with_grad: bool):
        rows = max(1, CHUNK_ELEMENTS // weight.shape[0])
        loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
        correct = torch.zeros((), dtype=torch.int64, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if with_grad else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if with_grad and weight.requires_grad else None
        for start in range(0, hidden.shape[0], rows):
            chunk, chunk_targets = hidden[start : start + rows], targets[start : start + rows]
            logits = (chunk @ weight.t()).float()
            log_norm = torch.logsumexp(logits, dim=-1)
            loss += (log_norm - logits.gather(1, chunk_targets[:, None]).squeeze(1)).sum()
            correct += (logits.argmax(-1) == chunk_targets).sum()
            if grad_hidden is None:
                continue
            # d(loss)/d(logits) = softmax − one-hot, built in place of the logits.
            grad_logits = logits.sub_(log_norm[:, None]).exp_()
            grad_logits[torch.arange(len(chunk_targets), device=hidden.device), chunk_targets] -= 1
            grad_logits = grad_logits.to(hidden.dtype)
            grad_hidden[start : start + rows] = grad_logits @ weight
            if grad_weight is not None:
                grad_weight += (grad_logits.t() @ chunk).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, grad_loss, grad_correct):
        grad_hidden, grad_weight = ctx.saved_tensors
        hidden_grad = grad_hidden * grad_loss.to(grad_hidden.dtype) if grad_hidden is not None else None
        weight_grad = (grad_weight * grad_loss).to(ctx.weight_dtype) if grad_weight is not None else None
        return hidden_grad, weight_grad, None, None


def _output_head(model) -> torch.nn.Linear | None:
    head = model.get_output_embeddings()
    config = model.config.get_text_config()
    plain = type(head) is torch.nn.Linear and head.bias is None
    if not plain or any(getattr(config, name, None) not in (None, 1.0) for name in _LOGIT_TRANSFORMS):
        return None
    return head


def next_token_loss(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean loss over the batch's labelled tokens and the count of those the model predicts right.

    `batch` is a collated batch (worker/data.py): model inputs, `labels`, and `target_positions`, the
    flat indices of the positions whose next token is labelled."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "target_positions")}
    labels, positions = batch["labels"], batch["target_positions"]
    targets = labels[:, 1:].flatten().index_select(0, positions)
    count = max(len(positions), 1)
    head = _output_head(model)
    if head is None:
        logits = model(**inputs, use_cache=False).logits[:, :-1].flatten(0, 1).index_select(0, positions).float()
        correct = (logits.argmax(-1) == targets).sum()
        return F.cross_entropy(logits, targets, reduction="sum") / count, correct
    hidden = model.get_decoder()(**inputs, use_cache=False).last_hidden_state
    hidden = hidden[:, :-1].flatten(0, 1).index_select(0, positions)
    with_grad = torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad)
    loss, correct = LinearCrossEntropy.apply(hidden, head.weight, targets, with_grad)
    return loss / count, correct
