"""Hyperparameters in OpenAI's and Nebius's dialects: checked at create, resolved at start.

OpenAI sends `batch_size`, `learning_rate_multiplier` and `n_epochs` (each a number or "auto"),
either at the top level or under `method.<type>.hyperparameters`, plus `beta` for DPO. Nebius sends
its own names (`learning_rate`, `lora`, `lora_r`, `packing`, …); GXFT adds `quantization: "nf4"`
(QLoRA). All land in one dict of requested values, kept as sent ("auto" included) until training
starts, when `resolve` turns it into `TrainingSettings` and the job shows the resolved numbers.

On a server of the Nebius dialect, a job is read as Nebius's server reads it: its defaults are Nebius's
(3 epochs, batch 8, learning rate 1e-5), and `learning_rate_multiplier` is the learning rate itself,
as Nebius's own sample sends it (`"learning_rate_multiplier": 2e-5`, and that run learns).
"""

import math
from typing import Any

import msgspec

from contract.literals import METHODS, Method
from contract.training_settings import TrainingSettings
from server.config import Dialect
from server.errors import invalid_request


class Bound(msgspec.Struct, frozen=True):
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the value must be strictly above `low`
    high_open: bool = False
    auto: bool = False
    choices: tuple[str, ...] = ()  # for kind str

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "one of " + ", ".join(f'"{choice}"' for choice in self.choices)
        kind = "an integer" if self.kind is int else "a number"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_num(self.high)}")
        text = f"{kind} {' and '.join(parts)}" if parts else kind
        return text + (' or "auto"' if self.auto else "")

    def accepts(self, value: Any) -> bool:
        if self.auto and value == "auto":
            return True
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and not (isinstance(value, int) or float(value).is_integer()):
            return False
        if isinstance(value, float) and not math.isfinite(value):  # (an int is finite, however long)
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


BOUNDS: dict[str, Bound] = {
    "n_epochs": Bound(int, 1, 50, auto=True),
    "batch_size": Bound(int, 1, 256, auto=True),
    "learning_rate_multiplier": Bound(float, 0, 100, low_open=True, auto=True),
    "learning_rate": Bound(float, 0, 1, low_open=True),
    "warmup_ratio": Bound(float, 0, 1),
    "weight_decay": Bound(float, 0, 10),
    "lora": Bound(bool),
    "lora_r": Bound(int, 1, 512),
    "lora_alpha": Bound(float, 0, 4096, low_open=True),
    "lora_dropout": Bound(float, 0, 1, high_open=True),
    "packing": Bound(bool),
    "max_grad_norm": Bound(float, 0, 1e6, low_open=True),
    "context_length": Bound(int, 16, 1 << 20),
    "beta": Bound(float, 0, 2, low_open=True, auto=True),
    "quantization": Bound(str, choices=("nf4",)),
    # Reinforcement: OpenAI's, and GXFT's length of a sampled answer.
    "compute_multiplier": Bound(float, 0, 10, low_open=True, auto=True),
    "eval_interval": Bound(int, 1, 1_000_000, auto=True),
    "eval_samples": Bound(int, 1, 64, auto=True),
    "reasoning_effort": Bound(str, choices=("default", "low", "medium", "high")),
    "max_completion_tokens": Bound(int, 1, 4096),
}
# The keys OpenAI echoes for each method ("auto" until resolved), and the keys only one method takes.
OPENAI_KEYS: dict[Method, tuple[str, ...]] = {
    "supervised": ("batch_size", "learning_rate_multiplier", "n_epochs"),
    "dpo": ("batch_size", "learning_rate_multiplier", "n_epochs", "beta"),
    "reinforcement": ("batch_size", "learning_rate_multiplier", "n_epochs", "compute_multiplier", "eval_interval",
                      "eval_samples", "reasoning_effort"),
}
ECHOED_DEFAULTS = {"reasoning_effort": "default"}  # what OpenAI echoes for a key left out, where not "auto"
REINFORCEMENT: tuple[Method, ...] = ("reinforcement",)
METHOD_ONLY_KEYS: dict[str, tuple[Method, ...]] = {
    "beta": ("dpo", "reinforcement"), "compute_multiplier": REINFORCEMENT, "eval_interval": REINFORCEMENT,
    "eval_samples": REINFORCEMENT, "reasoning_effort": REINFORCEMENT, "max_completion_tokens": REINFORCEMENT,
}
# Nebius's documented defaults for what OpenAI leaves "auto". Its others (full fine-tuning, lora_alpha 8)
# GXFT does not take: a LoRA adapter is what `/v0/models` deploys and what a small GPU trains.
NEBIUS_DEFAULTS = {"n_epochs": 3, "batch_size": 8, "learning_rate": 1e-5}
DEFAULT_BETA: dict[Method, float] = {"supervised": 0.1, "dpo": 0.1, "reinforcement": 0.04}
# DPO and reinforcement refine a model that already answers: the field's rates for them are about a tenth of SFT's.
LEARNING_RATE_FACTOR: dict[Method, float] = {"supervised": 1.0, "dpo": 0.1, "reinforcement": 0.1}
# Reinforcement: answers sampled per prompt at compute_multiplier 1 ("auto"), and the bounds of the group.
SAMPLES_PER_PROMPT = 4
MAX_SAMPLES_PER_PROMPT = 64

DEFAULTS = {
    "warmup_ratio": 0.0,
    "weight_decay": 0.0,
    # LoRA by default: a small adapter that serves anywhere; `"lora": false` trains all weights.
    "lora": True,
    "lora_r": 8,
    "lora_alpha": 16.0,
    "lora_dropout": 0.0,
    "packing": True,
    "max_grad_norm": 1.0,
}


def _method_hyperparameters(method: dict[str, Any]) -> tuple[Method, dict[str, Any]]:
    method_type = method.get("type")
    if not isinstance(method_type, str):
        raise invalid_request("method.type is required: 'supervised'.", param="method.type")
    if method_type not in METHODS:
        raise invalid_request(
            f"Fine-tuning method {method_type!r} is not supported; supported: {', '.join(METHODS)}.",
            param="method.type",
        )
    for key in method:
        if key not in ("type", method_type):
            raise invalid_request(f"Unknown field method.{key} for method type {method_type!r}.", param=f"method.{key}")
    body = method.get(method_type) or {}
    if not isinstance(body, dict):
        raise invalid_request(f"method.{method_type} must be an object.", param=f"method.{method_type}")
    allowed = ("hyperparameters", "grader") if method_type == "reinforcement" else ("hyperparameters",)
    for key in body:
        if key not in allowed:
            raise invalid_request(f"Unknown field method.{method_type}.{key}; it takes {' and '.join(allowed)}.",
                                  param=f"method.{method_type}.{key}")
    hyperparameters = body.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        raise invalid_request(
            f"method.{method_type}.hyperparameters must be an object.", param=f"method.{method_type}.hyperparameters"
        )
    return method_type, hyperparameters


def parse_requested(
    hyperparameters: dict[str, Any] | None, method: dict[str, Any] | None, max_context_length: int,
    dialect: Dialect = "openai",
) -> tuple[Method, dict[str, Any]]:
    """Check the request's hyperparameters; return the method type and the values as requested."""
    method_type: Method = "supervised"
    prefix, values = "hyperparameters", dict(hyperparameters or {})
    if method is not None:
        method_type, from_method = _method_hyperparameters(method)
        if method_type != "supervised" and values:
            raise invalid_request(
                f"Give the hyperparameters of a {method_type} job in method.{method_type}.hyperparameters.",
                param="hyperparameters",
            )
        if from_method and values:
            raise invalid_request(
                "Give hyperparameters either at the top level or in method, not both.", param="hyperparameters"
            )
        if from_method:
            values, prefix = dict(from_method), f"method.{method_type}.hyperparameters"
    if dialect == "nebius":
        values = _as_nebius_reads(values, prefix)
    for name, value in values.items():
        bound = BOUNDS.get(name)
        if bound is None:
            raise invalid_request(
                f"Unknown hyperparameter {name!r}. Supported: {', '.join(BOUNDS)}.", param=f"{prefix}.{name}"
            )
        if method_type not in METHOD_ONLY_KEYS.get(name, (method_type,)):
            raise invalid_request(
                f"Hyperparameter {name!r} belongs to the {' and '.join(METHOD_ONLY_KEYS[name])} method, "
                f"not {method_type}.", param=f"{prefix}.{name}",
            )
        if name == "context_length":
            bound = msgspec.structs.replace(bound, high=max_context_length)
        if not bound.accepts(value):
            raise invalid_request(
                f"Invalid value for hyperparameter {name!r}: {value!r}. It must be {bound.describe()}.",
                param=f"{prefix}.{name}",
            )
        if bound.kind is int and value != "auto":
            values[name] = int(value)
    if "learning_rate" in values and values.get("learning_rate_multiplier", "auto") != "auto":
        raise invalid_request(
            "Give either learning_rate or learning_rate_multiplier, not both.", param=f"{prefix}.learning_rate"
        )
    if "quantization" in values and values.get("lora") is False:
        raise invalid_request(
            'quantization "nf4" (QLoRA) trains a LoRA adapter on the 4-bit base, so it cannot go with "lora": false.',
            param=f"{prefix}.quantization",
        )
    if dialect == "nebius":
        values = {**NEBIUS_DEFAULTS, **values}
    for name in OPENAI_KEYS[method_type]:
        if not (name == "learning_rate_multiplier" and "learning_rate" in values):
            values.setdefault(name, ECHOED_DEFAULTS.get(name, "auto"))
    return method_type, values


def _as_nebius_reads(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Nebius's `learning_rate_multiplier` is an absolute learning rate; "auto" is Nebius's default."""
    values = dict(values)
    if "learning_rate_multiplier" not in values:
        return values
    if "learning_rate" in values:
        raise invalid_request(
            "Give either learning_rate or learning_rate_multiplier, not both; on this server (Nebius's dialect) "
            "both name the learning rate.", param=f"{prefix}.learning_rate",
        )
    rate = values.pop("learning_rate_multiplier")
    if rate != "auto":
        if not BOUNDS["learning_rate"].accepts(rate):
            raise invalid_request(
                f"Invalid value for hyperparameter 'learning_rate_multiplier': {rate!r}. On this server (Nebius's "
                f"dialect) it is the learning rate itself, so it must be {BOUNDS['learning_rate'].describe()}.",
                param=f"{prefix}.learning_rate_multiplier",
            )
        values["learning_rate"] = rate
    return values


def hyperparameters_param(method_type: str, top_level: bool) -> str:
    """Where the request put its hyperparameters, for the `param` of an error about one of them."""
    return "hyperparameters" if top_level else f"method.{method_type}.hyperparameters"


def default_epochs(example_count: int) -> int:
    """OpenAI's published heuristic: about 100 example passes for small files, at most 25 epochs."""
    if example_count * 3 < 100:
        return max(1, min(25, 100 // max(example_count, 1)))
    if example_count * 3 > 25000:
        return max(1, 25000 // example_count)
    return 3


def resolve(
    method_type: Method,
    requested: dict[str, Any],
    example_count: int,
    base_learning_rate: dict[str, float],
    context_length: int,
) -> TrainingSettings:
    values = {**DEFAULTS, **requested}
    n_epochs = values["n_epochs"]
    batch_size = values["batch_size"]
    lora = values["lora"]
    base = base_learning_rate["lora" if lora else "full"] * LEARNING_RATE_FACTOR[method_type]
    if "learning_rate" in values:
        learning_rate = float(values["learning_rate"])
        multiplier = learning_rate / base
    else:
        multiplier = 1.0 if values["learning_rate_multiplier"] == "auto" else float(values["learning_rate_multiplier"])
        learning_rate = base * multiplier
    return TrainingSettings(
        n_epochs=default_epochs(example_count) if n_epochs == "auto" else n_epochs,
        batch_size=max(1, min(8, example_count // 64)) if batch_size == "auto" else batch_size,
        learning_rate=learning_rate,
        learning_rate_multiplier=round(multiplier, 6),
        warmup_ratio=values["warmup_ratio"],
        weight_decay=values["weight_decay"],
        lora=lora,
        lora_r=values["lora_r"],
        lora_alpha=float(values["lora_alpha"]),
        lora_dropout=values["lora_dropout"],
        packing=values["packing"],
        max_grad_norm=values["max_grad_norm"],
        context_length=values.get("context_length", context_length),
        beta=DEFAULT_BETA[method_type] if values.get("beta", "auto") == "auto" else float(values["beta"]),
        quantization=values.get("quantization"),
        samples_per_prompt=_samples_per_prompt(values.get("compute_multiplier", "auto")),
        max_completion_tokens=values.get("max_completion_tokens", 64),
        eval_interval=None if values.get("eval_interval", "auto") == "auto" else values["eval_interval"],
        eval_samples=1 if values.get("eval_samples", "auto") == "auto" else values["eval_samples"],
    )


def _samples_per_prompt(compute_multiplier: float | str) -> int:
    """OpenAI's compute_multiplier scales how widely training explores: here, the answers sampled per prompt."""
    if compute_multiplier == "auto":
        return SAMPLES_PER_PROMPT
    return max(2, min(MAX_SAMPLES_PER_PROMPT, round(SAMPLES_PER_PROMPT * float(compute_multiplier))))
