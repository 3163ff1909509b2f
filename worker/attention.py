"""Padding-free attention for packed batches on a CUDA GPU.

A packed row holds several examples end to end. transformers' SDPA path keeps them apart with a
(tokens × tokens) block-diagonal mask, so attention costs the square of the whole row and runs in a
masked kernel. Here the examples' boundaries (`cu_seq_lens_*`, from worker/data.py's `collate`) go to
the variable-length flash-attention kernel that ships with PyTorch (`torch.nn.attention.varlen`): each
example attends to itself alone, at the cost of its own length squared.

A batch without boundaries is padded on the right: plain causal SDPA serves it without a mask, since
no real token can see a pad that comes after it, and pad positions are never trained on.
"""

from typing import Any

import torch
from torch.nn.attention.varlen import varlen_attn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

NAME = "gxft_varlen"


def available(device: torch.device, config: Any) -> bool:
    """Whether the model should load with this attention: a CUDA GPU that runs flash attention (compute
    capability 8.0 or newer), and a model whose attention has nothing the kernel leaves out."""
    return (
        device.type == "cuda"
        and torch.cuda.get_device_capability(device)[0] >= 8
        and not getattr(config, "attention_dropout", 0.0)
        and getattr(config, "attn_logit_softcapping", None) is None
    )


def padding_free(model) -> bool:
    return getattr(model.config, "_attn_implementation", None) == NAME


def varlen_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    boundaries = kwargs.get("cu_seq_lens_q")
    if boundaries is None:
        return sdpa_attention_forward(module, query, key, value, None, dropout=dropout, scaling=scaling,
                                      is_causal=query.shape[2] > 1)
    if query.dtype not in (torch.float16, torch.bfloat16):
        # QLoRA keeps norms in float32 (peft's prepare_model_for_kbit_training), so the rotary embedding
        # hands float32 here; the flash kernel takes 16-bit inputs only.
        target = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else torch.bfloat16
        query, key, value = (tensor.to(target) for tensor in (query, key, value))
    # (1, heads, tokens, dim) → (tokens, heads, dim), as the kernel takes them.
    query, key, value = (tensor.squeeze(0).transpose(0, 1).contiguous() for tensor in (query, key, value))
    window = kwargs.get("sliding_window")
    output = varlen_attn(
        query, key, value, boundaries, boundaries, kwargs["max_length_q"], kwargs["max_length_q"], scale=scaling,
        enable_gqa=key.shape[1] != query.shape[1],
        window_size=(window - 1 if window else -1, 0),  # (-1, 0): causal, unbounded on the left
    )
    assert isinstance(output, torch.Tensor)  # without `return_aux`, the kernel answers the output alone
    return output.unsqueeze(0), None  # (1, tokens, heads, dim)


AttentionInterface.register(NAME, varlen_attention)
