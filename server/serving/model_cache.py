"""Models loaded for serving, kept in memory between requests.

Each base model is loaded once. LoRA adapters load onto their base on first use (peft keeps
several side by side) and the least recently used is dropped past `adapter_slots`. A model
fine-tuned on all its weights is a model of its own; `full_model_slots` of them stay loaded.
Only the engine thread touches this cache.
"""

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modeling.importing import ImportRefused, ensure_converted
from modeling.loading import ModelLoadError, load_model, load_tokenizer, pick_device
from server.base_models import BaseModel
from server.errors import APIError
from server.model_catalog import FineTunedWeights, ServedModel, WeightsFolder
from server.serving.generation import BASE_ADAPTER, longest_token_bytes

log = logging.getLogger("gxft.serving")

MIXED = "__mixed__"  # rows of several adapters in one forward pass, each naming its own


@dataclass
class LoadedModel:
    model: Any  # a transformers model, or a peft model holding adapters
    tokenizer: Any
    device: torch.device
    longest_token_bytes: int  # for checking a prompt's size before tokenising it
    adapters: OrderedDict[str, None] = field(default_factory=OrderedDict)  # loaded LoRA adapters, oldest first
    # What the adapter layers are set to: BASE_ADAPTER (disabled), one adapter's name, MIXED, or None (not known,
    # after an adapter was loaded or deleted). Changing it walks every layer of the model, which costs more than
    # a decoding step of a small model, so it is changed only when a forward pass needs another setting.
    adapter_setting: str | None = None
    grammar_tokenizer: Any = None  # llguidance's view of the tokenizer, built on the first structured output

    @property
    def has_adapters(self) -> bool:
        return bool(self.adapters)

    def set_adapters_for(self, adapters: set[str]) -> bool:
        """Set the model up for a forward pass over rows of these adapters; answer whether the rows need peft's
        per-row (mixed) forward, which is slower than one adapter, or none, for every row."""
        if not self.has_adapters:
            return False
        wanted = next(iter(adapters)) if len(adapters) == 1 else MIXED
        if wanted != self.adapter_setting:
            if wanted == BASE_ADAPTER:
                self.model.base_model.disable_adapter_layers()
            else:
                self.model.base_model.enable_adapter_layers()
                if wanted != MIXED:
                    self.model.set_adapter(wanted)
            self.adapter_setting = wanted
        return wanted == MIXED


@dataclass(frozen=True)
class Placement:
    """Where a request runs: which loaded model, and which adapter on it."""

    group: str
    loaded: LoadedModel
    adapter: str


def base_model_folder(base: BaseModel) -> str:
    """The base model's folder, converted from its GGUF file first where it has one and that is not done yet."""
    if base.gguf is not None:
        try:
            ensure_converted(base.gguf, Path(base.path), log.info)
        except ImportRefused as exc:
            raise APIError(500, str(exc), type="server_error", code="model_load_failed") from exc
    return base.path


def _load(path: str, name: str) -> LoadedModel:
    device = pick_device()
    try:
        tokenizer = load_tokenizer(path, name)
        model = load_model(path, device, name).eval()
    except ModelLoadError as exc:
        raise APIError(500, str(exc), type="server_error", code="model_load_failed") from exc
    return LoadedModel(model=model, tokenizer=tokenizer, device=device,
                       longest_token_bytes=longest_token_bytes(tokenizer))


class ModelCache:
    def __init__(self, adapter_slots: int, full_model_slots: int, in_use: Callable[[], set[str]]):
        """`in_use` answers the adapters that rows still run on: they are not unloaded to make room, even past
        `adapter_slots`, as a running row's forward pass needs its adapter."""
        self.in_use = in_use
        self.adapter_slots = adapter_slots
        self.full_model_slots = full_model_slots
        self._bases: dict[str, LoadedModel] = {}
        self._full: OrderedDict[str, LoadedModel] = OrderedDict()
        self.load_seconds: dict[str, float] = {}  # the last load time of each model, for logs and benchmarks

    def place(self, served: ServedModel) -> Placement:
        weights = served.weights
        if weights is None:
            return Placement(served.base.id, self._base(served.base), BASE_ADAPTER)
        if weights.kind == "full":
            return Placement(weights.checkpoint_id, self._full_model(served.name, weights), BASE_ADAPTER)
        base = self._base(served.base)
        self._adapter(base, served.name, weights)
        return Placement(served.base.id, base, weights.checkpoint_id)

    def forget(self, checkpoint_id: str) -> None:
        """Unload a deleted model's weights."""
        self._full.pop(checkpoint_id, None)
        for base in self._bases.values():
            if checkpoint_id in base.adapters and len(base.adapters) > 1:
                base.model.delete_adapter(checkpoint_id)
                del base.adapters[checkpoint_id]
                base.adapter_setting = None

    def _timed(self, name: str, load):
        started = time.perf_counter()
        result = load()
        self.load_seconds[name] = time.perf_counter() - started
        log.info("loaded %s in %.2f s", name, self.load_seconds[name])
        return result

    def _base(self, base: BaseModel) -> LoadedModel:
        if base.id not in self._bases:
            self._bases[base.id] = self._timed(base.id, lambda: _load(base_model_folder(base), base.id))
        return self._bases[base.id]

    def _full_model(self, name: str, weights: FineTunedWeights) -> LoadedModel:
        key = weights.checkpoint_id
        if key in self._full:
            self._full.move_to_end(key)
            return self._full[key]

        def load() -> LoadedModel:
            with WeightsFolder(name, weights) as folder:
                return _load(folder, name)

        self._full[key] = self._timed(name, load)
        while len(self._full) > self.full_model_slots:
            self._full.popitem(last=False)
        return self._full[key]

    def _adapter(self, base: LoadedModel, name: str, weights: FineTunedWeights) -> None:
        from peft import PeftModel

        key = weights.checkpoint_id
        if key in base.adapters:
            base.adapters.move_to_end(key)
            return

        def load() -> None:
            with WeightsFolder(name, weights) as folder:
                try:
                    if isinstance(base.model, PeftModel):
                        base.model.load_adapter(folder, adapter_name=key)
                    else:
                        base.model = PeftModel.from_pretrained(base.model, folder, adapter_name=key).eval()
                except Exception as exc:
                    raise APIError(
                        500, f"The adapter of {name} could not be loaded: {exc}", type="server_error",
                        code="model_load_failed",
                    ) from exc

        self._timed(name, load)
        base.adapters[key] = None
        base.adapter_setting = None
        in_use = self.in_use() | {key}
        for unused in [adapter for adapter in base.adapters if adapter not in in_use]:  # oldest first
            if len(base.adapters) <= self.adapter_slots:
                break
            del base.adapters[unused]
            base.model.delete_adapter(unused)
            base.adapter_setting = None
