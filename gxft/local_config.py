"""The configuration file of `gxft train` (JSON or YAML), in the layout of the fine-tuning CLI that
GXFT's command line grew from: `dataset`, `model` and `training` sections.

Every key is known and every value checked before training starts: an unknown key or an
impossible value stops with a message naming it (`ConfigError`).
"""

import json
from pathlib import Path
from typing import Annotated, Literal

import msgspec

Positive = Annotated[int, msgspec.Meta(ge=1)]
Rate = Annotated[float, msgspec.Meta(gt=0, le=1)]
Fraction = Annotated[float, msgspec.Meta(ge=0, lt=1)]
METHODS = ("sft", "lora", "qlora")  # sft: all weights; qlora: LoRA on a 4-bit base (GPU only)
FORMATS = ("chat", "alpaca", "prompt_completion", "text")


class ConfigError(Exception):
    pass


class DatasetConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: str
    format: Literal["chat", "alpaca", "prompt_completion", "text"] | None = None  # None: detected
    train_split: Literal["train"] = "train"  # a JSONL file is one split: all of it trains
    validation_path: str | None = None


class ModelConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str  # a registry id (gxft/tiny-chat) or a folder that from_pretrained loads
    max_length: Annotated[int, msgspec.Meta(ge=16)] = 512
    padding_side: Literal["right", "left"] = "right"  # examples are packed, so padding never shows
    device_map: Literal["auto", "cpu", "cuda"] = "auto"


class LoraConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    r: Positive = 8
    lora_alpha: Annotated[float, msgspec.Meta(gt=0)] = 16
    lora_dropout: Fraction = 0.05
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainingConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    method: Literal["sft", "lora", "qlora"]
    output_dir: str
    num_train_epochs: Positive = 1
    per_device_train_batch_size: Positive = 2
    per_device_eval_batch_size: Positive = 2
    gradient_accumulation_steps: Positive = 1
    learning_rate: Rate = 5e-5
    weight_decay: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    warmup_ratio: Fraction = 0.0
    seed: Annotated[int, msgspec.Meta(ge=0)] = 0
    lora: LoraConfig | None = None


class LocalConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    dataset: DatasetConfig
    model: ModelConfig
    training: TrainingConfig


def default_config(model: str, dataset: str, method: str, data_format: str | None, output_dir: str) -> LocalConfig:
    return LocalConfig(
        dataset=DatasetConfig(path=dataset, format=data_format),  # type: ignore[arg-type]
        model=ModelConfig(name=model),
        training=TrainingConfig(
            method=method,  # type: ignore[arg-type]
            output_dir=output_dir,
            num_train_epochs=1,
            per_device_train_batch_size=2,
            gradient_accumulation_steps=4,
            learning_rate=2e-4 if method != "sft" else 5e-5,
            weight_decay=0.01,
            lora=LoraConfig() if method != "sft" else None,
        ),
    )


def dump(config: LocalConfig, yaml: bool) -> str:
    data = msgspec.to_builtins(config)
    if yaml:
        import yaml as pyyaml

        return pyyaml.safe_dump(data, sort_keys=False)
    return json.dumps(data, indent=2) + "\n"


def load(path: Path) -> LocalConfig:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml as pyyaml

            data = pyyaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        kind = "YAML" if path.suffix in (".yaml", ".yml") else "JSON"
        raise ConfigError(f"{path}: not valid {kind}: {exc}") from None
    try:
        config = msgspec.convert(data, LocalConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {_readable(exc)}") from None
    if config.training.method != "sft" and config.training.lora is None:
        config.training.lora = LoraConfig()
    if config.training.method == "sft" and config.training.lora is not None:
        raise ConfigError(f"{path}: training.lora is set but training.method is 'sft', which trains all weights; "
                          "use method 'lora' or remove the lora block")
    return config


def _readable(error: msgspec.ValidationError) -> str:
    """msgspec's "… - at `$.training.lr`" as "training.lr: …", and unknown fields as "unknown key a.b"."""
    detail, _, where = str(error).partition(" - at `$.")
    where = where.rstrip("`")
    if detail.startswith("Object contains unknown field"):
        name = detail.split("`")[1]
        return f"unknown key {where + '.' if where else ''}{name}"
    return f"{where}: {detail}" if where else detail
