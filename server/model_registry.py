"""The base models that can be fine-tuned, read from a TOML file (see sample_data/models/registry.toml)."""

import tomllib
from pathlib import Path

import msgspec


class BaseModel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    path: str
    context_length: int = 2048
    methods: list[str] = msgspec.field(default_factory=lambda: ["supervised"])
    learning_rate: dict[str, float] = msgspec.field(default_factory=lambda: {"lora": 2e-4, "full": 2e-5})
    created: int = 0


class RegistryFile(msgspec.Struct, forbid_unknown_fields=True):
    models: list[BaseModel] = []


class ModelRegistry:
    def __init__(self, models: list[BaseModel]):
        self._models = {model.id: model for model in models}

    @classmethod
    def load(cls, path: Path) -> "ModelRegistry":
        registry = msgspec.convert(tomllib.loads(path.read_text()), RegistryFile)
        created = int(path.stat().st_mtime)
        for model in registry.models:
            local = (path.parent / model.path).resolve()
            if local.exists():
                model.path = str(local)
            model.created = model.created or created
        return cls(registry.models)

    def get(self, model_id: str) -> BaseModel | None:
        return self._models.get(model_id)

    def ids(self) -> list[str]:
        return list(self._models)

    def all(self) -> list[BaseModel]:
        return list(self._models.values())
