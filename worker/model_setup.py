"""The model a training run starts from, made ready to train: loaded on the run's device (its frozen base
in 4 bits for QLoRA), from a fine-tuned model's weights when the run continues one, with gradient
checkpointing only where activations would crowd the GPU, and wrapped with LoRA unless every weight
trains."""

import logging
from pathlib import Path
from typing import Any

import torch

from contract.training_settings import TrainingSettings
from modeling.importing import ensure_converted
from modeling.loading import compute_dtype, load_config, load_model, load_tokenizer
from worker import attention
from worker.training_run import TrainingRun

# Gradient checkpointing trades a second forward pass for memory: used only when a step's activations,
# estimated at this many bytes per token, hidden unit and layer (Korthikanti et al. count 34 for a
# bf16 transformer layer, plus margin), would take more than half the GPU memory left after loading.
ACTIVATION_BYTES: float = 50

log = logging.getLogger("gxft.worker")


class GPURequired(Exception):
    """The run asks for something only a CUDA GPU can do (QLoRA), and this machine has none."""


def starting_model(run: TrainingRun, sequences_per_example: int) -> tuple[Any, Any]:
    """The tokenizer, and the model ready to train (adapter or all weights)."""
    settings, continued = run.settings, run.continued
    path, name = run.model_path, run.model_name
    if run.model_gguf is not None:
        ensure_converted(run.model_gguf, Path(path), log.info)
    if continued is not None and not continued.adapter:  # full weights: they are the model
        path, name = str(continued.folder), continued.name
    tokenizer = load_tokenizer(path, name)
    model = _load(path, name, run.device, settings.quantization)
    if settings.quantization is None and _activations_crowd_memory(model, settings, run.device, sequences_per_example):
        model.activation_checkpointing_enable()
        if settings.lora:
            model.enable_input_require_grads()  # checkpointed blocks need a grad path through frozen inputs
    if continued is not None and continued.adapter:
        from peft import PeftModel

        # Continue training that adapter, or fold it into the base and train every weight.
        model = PeftModel.from_pretrained(model, str(continued.folder), is_trainable=settings.lora)
        # (peft froze the base weights when it loaded the adapter for inference; unfreeze them.)
        if settings.lora:
            return tokenizer, compute_in_input_dtype(model)
        return tokenizer, model.merge_and_unload().requires_grad_(True)
    return tokenizer, apply_lora(model, settings) if settings.lora else model


def _load(path: str, name: str, device: torch.device, quantization: str | None) -> Any:
    """With quantization "nf4" the linear layers load in 4 bits (bitsandbytes), frozen, ready for LoRA (QLoRA)."""
    if quantization is not None and device.type != "cuda":
        raise GPURequired('QLoRA (quantization "nf4") needs a CUDA GPU, and this worker has none.')
    options: dict[str, Any] = {}
    if attention.available(device, load_config(path, name)):
        options["attn_implementation"] = attention.NAME
    if quantization is None:
        return load_model(path, device, name, **options)
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    dtype = compute_dtype(device)
    quantization_config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
    )
    model = load_model(path, device, name, dtype=dtype, quantization_config=quantization_config,
                       device_map={"": device.index or 0}, **options)
    # peft's own checkpointing switch goes through transformers' deprecated name; this is what it does.
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model.enable_input_require_grads()
    model.activation_checkpointing_enable()
    return model


def _activations_crowd_memory(model: Any, settings: TrainingSettings, device: torch.device,
                              sequences_per_example: int) -> bool:
    if device.type != "cuda":
        return False
    config = model.config.get_text_config()
    layers, hidden = getattr(config, "num_hidden_layers", None), getattr(config, "hidden_size", None)
    if not (layers and hidden):
        return True
    tokens = settings.batch_size * settings.context_length * sequences_per_example
    free, _ = torch.cuda.mem_get_info(device)
    return ACTIVATION_BYTES * tokens * hidden * layers > free / 2


def apply_lora(model: Any, settings: TrainingSettings) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,  # peft annotates an int; any number works
        lora_dropout=settings.lora_dropout,
        target_modules=settings.lora_target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )
    return compute_in_input_dtype(get_peft_model(model, config))


def compute_in_input_dtype(model: Any) -> Any:
    """peft keeps LoRA weights in float32 (so that small updates are not lost) and casts each layer's input
    up to match; under `mixed_precision` the products run in bf16 instead, so that cast is only a cost."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False  # an attribute of peft's LoRA layers
    return model
