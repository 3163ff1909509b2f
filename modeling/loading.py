"""Loading causal language models and their tokenizers through transformers' `from_pretrained`, as any
local model loads, so that `gxft/tiny-chat`, a real model and a user's own folder all take one path.

One place decides what training, serving and evaluation must agree on: the device (a CUDA GPU when
one is visible), the dtype (bf16 where the GPU has it, float32 elsewhere: CPUs and older GPUs lose
too much in 16 bits) and the padding token (the end-of-sequence token when the tokenizer has none).
"""

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

DevicePreference = Literal["auto", "cpu", "cuda"]

# peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` each time it wraps a model. The
# warning is about peft's code, not GXFT's or the user's, so exactly that message is silenced.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


class ModelLoadError(Exception):
    pass


def pick_device(preference: DevicePreference = "auto") -> torch.device:
    if preference == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(preference)


def compute_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def _not_loaded(name: str, path: str | Path, exc: Exception) -> ModelLoadError:
    return ModelLoadError(f"The model {name!r} could not be loaded from {path}: {exc}")


def local_only(path: str | Path, name: str) -> dict[str, Any]:
    """`from_pretrained` options that keep loading on this machine: a folder loads as it is, a hub id only
    from the local cache. Anything else is refused at once, before transformers tries the hub (and
    prints its own retries and warnings): models are downloaded by `gxft models import`, never here."""
    if Path(path).exists():
        return {}
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = isinstance(try_to_load_from_cache(str(path), "config.json"), str)
    except ValueError:  # not even a hub id
        cached = False
    if not cached:
        raise ModelLoadError(f"The model {name!r} is neither a folder here ({path} does not exist) nor in the "
                             "Hugging Face cache; GXFT loads models only from this machine: "
                             f"`gxft models import {path}` downloads one from the hub.")
    return {"local_files_only": True}


def load_config(path: str | Path, name: str) -> PretrainedConfig:
    options = local_only(path, name)
    try:
        return AutoConfig.from_pretrained(path, **options)
    except Exception as exc:
        raise _not_loaded(name, path, exc) from exc


def load_tokenizer(path: str | Path, name: str) -> PreTrainedTokenizerBase:
    options = local_only(path, name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **options)
    except Exception as exc:
        raise _not_loaded(name, path, exc) from exc
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str | Path, device: torch.device, name: str, dtype: torch.dtype | None = None,
               **options: Any) -> PreTrainedModel:
    """The model on `device`; `options` go to `from_pretrained` (attention, quantization, device map)."""
    options.update(local_only(path, name))
    try:
        # (Any: transformers' `@wraps(Module.to)` hides `to`'s signature from type checkers.)
        model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or compute_dtype(device), **options)
        return model if "device_map" in options else model.to(device)
    except Exception as exc:
        raise _not_loaded(name, path, exc) from exc


def load_model_folder(folder: Path, device: torch.device,
                      base_path: Callable[[str], str] = str) -> tuple[Any, PreTrainedTokenizerBase]:
    """A folder that `gxft train` or `gxft jobs download` wrote: a LoRA adapter (on the base model its
    adapter_config.json names, found by `base_path`: a registry id's folder) or a whole model, with its
    tokenizer (or the base model's)."""
    adapter_config = folder / "adapter_config.json"
    if not adapter_config.exists():
        return load_model(folder, device, str(folder)), load_tokenizer(folder, str(folder))
    from peft import PeftConfig, PeftModel

    name = PeftConfig.from_pretrained(str(folder)).base_model_name_or_path
    if name is None:
        raise ModelLoadError(f"{adapter_config} does not name its base model (base_model_name_or_path)")
    base = base_path(name)
    try:
        model = PeftModel.from_pretrained(load_model(base, device, name), folder)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"The adapter in {folder} could not be loaded onto {base}: {exc}") from exc
    tokenizer_source = folder if (folder / "tokenizer_config.json").exists() else base
    return model, load_tokenizer(tokenizer_source, str(folder))
