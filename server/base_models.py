"""The base models that can be fine-tuned and served, read from a TOML file (see sample_data/models/registry.toml)
and from the data dir's own registry of imported models (`gxft models import`), in the same format.

A model may answer to other names (`aliases`), so code written for OpenAI or Nebius runs unchanged.
A profile (`gxft serve --profile NAME`) adds the aliases of its `[profiles.NAME]` table, and gives its
`names` to the first model of its `played_by` list that this server has.

A running server learns of an imported model by the data dir registry's modification time, looked at
no more than once a second: `gxft models import` writes the folder first and the registry entry last.
"""

import logging
import re
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from contract.literals import Method
from contract.packaged_files import packaged_file
from server.config import SHIPPED_REGISTRY, data_dir_path, models_dir, models_file_path

DEFAULT_PROFILE = "default"
IMPORTED_REGISTRY = "registry.toml"  # in the data dir's models folder
REFRESH_SECONDS = 1.0
# A base model's names become part of its fine-tuned models' names (`ft:<name>:…`), which routes carry.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")

log = logging.getLogger("gxft.models")


class BaseModel(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    id: str
    path: str = ""
    # A GGUF file the model is converted from on first use, into the data dir: a path (relative to the
    # registry file; absolute once loaded), or `package/file.gguf` inside an installed Python package, which
    # each converting machine finds in its own Python (contract/packaged_files.py).
    gguf: str | None = None
    context_length: int = 2048
    methods: list[Method] = msgspec.field(default_factory=lambda: ["supervised", "dpo", "reinforcement"])
    learning_rate: dict[str, float] = msgspec.field(default_factory=lambda: {"lora": 2e-4, "full": 2e-5})
    aliases: list[str] = []
    created: int = 0


class Profile(msgspec.Struct, forbid_unknown_fields=True):
    aliases: dict[str, str] = {}  # alias → model id
    names: list[str] = []  # more aliases, all of one model: the first of `played_by` this server has
    played_by: list[str] = []


class RegistryFile(msgspec.Struct, forbid_unknown_fields=True):
    models: list[BaseModel] = []
    profiles: dict[str, Profile] = {}


class RegistryError(Exception):
    pass


def valid_model_name(name: str) -> bool:
    return bool(MODEL_NAME.fullmatch(name)) and "//" not in name and ".." not in name


def converted_folder(models_dir: Path, model_id: str) -> Path:
    return models_dir / model_id.replace("/", "--")


@dataclass(frozen=True)
class RegistrySources:
    """The registry files, each adding to the ones before it: the shipped one, the user's own
    (GXFT_MODELS_FILE) and the data dir's registry of imported models. A model or profile of an id an
    earlier file has replaces it there."""
    user: Path | None = None
    profile: str = DEFAULT_PROFILE
    models_dir: Path | None = None  # the data dir's models: converted and imported ones
    shipped: Path = SHIPPED_REGISTRY

    @property
    def imported(self) -> Path | None:
        return self.models_dir / IMPORTED_REGISTRY if self.models_dir else None

    def files(self) -> list[Path]:
        """The files to read, in order; the imported registry only once something was imported."""
        imported = self.imported
        return [self.shipped, *[path for path in (self.user,) if path is not None],
                *[path for path in (imported,) if path is not None and path.exists()]]

    def stamps(self) -> tuple[float, ...]:
        return tuple(_mtime(path) for path in (self.shipped, self.user, self.imported) if path is not None)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def read_registry_file(path: Path) -> RegistryFile:
    try:
        registry = msgspec.convert(tomllib.loads(path.read_text()), RegistryFile)
    except (OSError, tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
        raise RegistryError(f"Cannot read the model registry {path}: {exc}") from exc
    created = int(path.stat().st_mtime)
    for model in registry.models:
        model.created = model.created or created
    return registry


class BaseModelRegistry:
    def __init__(self, models: list[BaseModel], aliases: dict[str, str] | None = None,
                 sources: RegistrySources | None = None, stand_in: str | None = None):
        self.sources = sources
        self.stand_in = stand_in  # the model that plays the profile's `names`, if it has any
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
        for name in [*self._models, *self._aliases]:
            if not valid_model_name(name):
                raise RegistryError(f"The model name {name!r} must be letters, digits, '-', '_', '.' and single "
                                    "'/', starting with a letter or digit: fine-tuned models are named after it.")
        self._stamps = sources.stamps() if sources else ()
        self._next_look = time.monotonic() + REFRESH_SECONDS
        self._lock = threading.Lock()

    @classmethod
    def load(cls, user: Path | None = None, profile: str = DEFAULT_PROFILE,
             models_dir: Path | None = None) -> "BaseModelRegistry":
        return cls.from_sources(RegistrySources(user, profile, models_dir))

    @classmethod
    def load_default(cls, data_dir: str | None = None) -> "BaseModelRegistry":
        """The registry `gxft serve` reads for that data dir (default profile), without creating the data dir."""
        return cls.load(models_file_path(), models_dir=models_dir(data_dir_path(data_dir)))

    @classmethod
    def from_sources(cls, sources: RegistrySources) -> "BaseModelRegistry":
        entries: dict[str, tuple[BaseModel, Path]] = {}
        profiles: dict[str, Profile] = {}
        for path in sources.files():
            registry = read_registry_file(path)
            for model in registry.models:
                if model.id in entries:
                    log.info("%s: the model %s replaces the one of the same id in %s", path, model.id,
                             entries[model.id][1])
                entries[model.id] = (model, path)
            for name, profile in registry.profiles.items():
                if name in profiles:
                    log.info("%s: the profile %s replaces the one of the same name", path, name)
                profiles[name] = profile
        if sources.profile != DEFAULT_PROFILE and sources.profile not in profiles:
            known = ", ".join([DEFAULT_PROFILE, *profiles])
            raise RegistryError(f"Unknown profile {sources.profile!r}; the registries have: {known}.")
        models = [model for model, path in entries.values() if _resolve(model, path.parent, sources.models_dir)]
        profile = profiles.get(sources.profile, Profile())
        aliases = dict(profile.aliases)
        available = {model.id for model in models}
        stand_in = next((model_id for model_id in profile.played_by if model_id in available), None)
        if profile.names and stand_in is None:
            raise RegistryError(f"None of the models that play the {sources.profile!r} profile's names "
                                f"({', '.join(profile.played_by)}) is in the registry.")
        aliases.update({name: stand_in for name in profile.names if stand_in is not None})
        return cls(models, aliases, sources, stand_in)

    def get(self, name: str) -> BaseModel | None:
        """The model called `name`, by its id or one of its aliases."""
        self._refresh()
        return self._models.get(self._aliases.get(name, name))

    def names(self) -> list[str]:
        """Every name a model answers to: ids first, then aliases."""
        self._refresh()
        return [*self._models, *self._aliases]

    def _refresh(self) -> None:
        """Take in the registry files' changes (an imported model), at most once a second."""
        if self.sources is None or time.monotonic() < self._next_look or not self._lock.acquire(blocking=False):
            return
        try:
            self._next_look = time.monotonic() + REFRESH_SECONDS
            if self.sources.stamps() == self._stamps:
                return
            try:
                fresh = BaseModelRegistry.from_sources(self.sources)
            except RegistryError as exc:
                log.error("keeping the models as they were: %s", exc)
                self._stamps = self.sources.stamps()
                return
            log.info("model registry changed: %s", ", ".join(fresh._models))
            self._models, self._aliases, self.stand_in = fresh._models, fresh._aliases, fresh.stand_in
            self._stamps = fresh._stamps
        finally:
            self._lock.release()


def _resolve(model: BaseModel, registry_dir: Path, models_dir: Path | None) -> bool:
    """Make the model's paths absolute; False when it is converted from a GGUF file this machine lacks."""
    if model.gguf is not None:
        if models_dir is None:  # nowhere to convert it to
            return False
        local = (registry_dir / model.gguf).resolve()
        if local.is_file():
            model.gguf = str(local)
        elif packaged_file(model.gguf) is None:
            return False
        model.path = model.path or str(converted_folder(models_dir, model.id))
    if not model.path:
        raise RegistryError(f"The model {model.id!r} has neither a path nor a gguf file.")
    local = (registry_dir / model.path).resolve()
    if local.exists():
        model.path = str(local)
    return True
