"""The base models that can be fine-tuned and served, read from a TOML file (see sample_data/models/registry.toml).

A model may answer to other names (`aliases`), so code written for OpenAI or Nebius runs unchanged.
A profile (`gxft serve --profile NAME`) adds the aliases of its `[profiles.NAME]` table.
"""

import re
import tomllib
from pathlib import Path

import msgspec

from contract.literals import Method

DEFAULT_PROFILE = "default"
# A base model's names become part of its fine-tuned models' names (`ft:<name>:…`), which routes carry.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")


class BaseModel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    path: str
    context_length: int = 2048
    methods: list[Method] = msgspec.field(default_factory=lambda: ["supervised", "dpo"])
    learning_rate: dict[str, float] = msgspec.field(default_factory=lambda: {"lora": 2e-4, "full": 2e-5})
    aliases: list[str] = []
    created: int = 0


class Profile(msgspec.Struct, forbid_unknown_fields=True):
    aliases: dict[str, str] = {}  # alias → model id


class RegistryFile(msgspec.Struct, forbid_unknown_fields=True):
    models: list[BaseModel] = []
    profiles: dict[str, Profile] = {}


class RegistryError(Exception):
    pass


class BaseModelRegistry:
    def __init__(self, models: list[BaseModel], aliases: dict[str, str] | None = None):
        self._models = {model.id: model for model in models}
        self._aliases: dict[str, str] = {}
        for model in models:
            self._aliases.update({alias: model.id for alias in model.aliases})
        for alias, target in (aliases or {}).items():
            if target not in self._models:
                raise RegistryError(f"Alias {alias!r} points at {target!r}, which is not a model in the registry.")
            self._aliases[alias] = target
        if clash := set(self._aliases) & set(self._models):
            raise RegistryError(f"{', '.join(sorted(clash))} is both a model id and an alias.")
        for name in self.names():
            if not MODEL_NAME.fullmatch(name) or "//" in name or ".." in name:
                raise RegistryError(f"The model name {name!r} must be letters, digits, '-', '_', '.' and single "
                                    "'/', starting with a letter or digit: fine-tuned models are named after it.")

    @classmethod
    def load(cls, path: Path, profile: str = DEFAULT_PROFILE) -> "BaseModelRegistry":
        try:
            registry = msgspec.convert(tomllib.loads(path.read_text()), RegistryFile)
        except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise RegistryError(f"Cannot read the model registry {path}: {exc}") from exc
        if profile != DEFAULT_PROFILE and profile not in registry.profiles:
            known = ", ".join([DEFAULT_PROFILE, *registry.profiles])
            raise RegistryError(f"Unknown profile {profile!r} in {path}; known profiles: {known}.")
        created = int(path.stat().st_mtime)
        for model in registry.models:
            local = (path.parent / model.path).resolve()
            if local.exists():
                model.path = str(local)
            model.created = model.created or created
        extra = registry.profiles[profile].aliases if profile in registry.profiles else {}
        return cls(registry.models, extra)

    def get(self, name: str) -> BaseModel | None:
        """The model called `name`, by its id or one of its aliases."""
        return self._models.get(self._aliases.get(name, name))

    def names(self) -> list[str]:
        """Every name a model answers to: ids first, then aliases."""
        return [*self._models, *self._aliases]
