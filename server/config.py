"""Server settings, from environment variables and `gxft serve` options.

| variable | meaning | default |
|---|---|---|
| GXFT_DATA_DIR | metadata database, blobs and the embedded queue | ./gxft-data |
| GXFT_API_KEYS | comma-separated `key` or `key=project`; unset: any key is accepted | unset |
| GXFT_ADMIN_KEYS | comma-separated keys that manage checkpoint permissions (and nothing else) | unset |
| GXFT_MAX_UPLOAD_BYTES | largest accepted file | 536870912 (512 MiB) |
| GXFT_MIN_EXAMPLES | fewest examples in a fine-tune file | 10 |
| GXFT_WORKER_TOKEN | secret shared with workers for the internal API | generated into the data dir |
| GXFT_REDIS_URL | use a Redis queue shared by workers on many machines | unset (SQLite queue) |
| GXFT_MODELS_FILE | a TOML registry of base models, added to sample_data/models/registry.toml | unset |
| GXFT_LEASE_SECONDS | how long a silent worker keeps its job | 60 |
| GXFT_PROFILE | `emulator`: OpenAI's and Nebius's model names answer (played by SmolLM2 or tiny-chat) | default |
| GXFT_DIALECT | `nebius`: behave as Nebius where it and OpenAI differ (docs/api-differences.md) | openai |
| GXFT_ADAPTER_SLOTS | LoRA adapters kept loaded for serving | 8 |
| GXFT_FULL_MODEL_SLOTS | fully fine-tuned models kept loaded for serving | 2 |
| GXFT_HEAD_TIMEOUT_SECONDS | how long a request's line and headers may take to arrive | 10 |
| GXFT_BODY_IDLE_SECONDS | the longest silence within a request body | 30 |
| GXFT_BODY_GRACE_SECONDS | how long a body may take before its rate is checked | 10 |
| GXFT_BODY_MIN_RATE | the slowest average rate of a body after the grace, in bytes/s | 1024 |
| GXFT_MAX_RESULT_FILE_BYTES | the largest file a worker may upload (a checkpoint part, training state) | 64 GiB |
| GXFT_PUBLIC_HOSTS | with no API keys: the host names, besides loopback ones, that requests may name | unset |
| GXFT_QUOTA_FILE_BYTES | per project: the most bytes its files may hold (0: no limit) | 0 |
| GXFT_QUOTA_ACTIVE_JOBS | per project: the most jobs queued, running or paused at once (0: no limit) | 0 |
| GXFT_EMBEDDING_MODEL | a sentence-transformers folder: `/v1/embeddings` and the cosine grader | unset |
| GXFT_EMBEDDING_MODEL_NAME | the name requests give that model | the folder's name |
| GXFT_WEBHOOK_RETRY_SECONDS | the first delay before a failed webhook delivery is tried again (it doubles) | 5 |
"""

import math
import os
import re
import secrets
from pathlib import Path
from typing import Literal, TypeVar, get_args

import msgspec

from contract.job_queue import QUEUE_FILENAME

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROJECT = "personal"
# Where OpenAI's and Nebius's fine-tuning APIs answer the same request differently (the order of lists,
# the names of result files, what `learning_rate_multiplier` means), a server follows one of them.
Dialect = Literal["openai", "nebius"]
DIALECTS: tuple[Dialect, ...] = get_args(Dialect)


class Settings(msgspec.Struct, kw_only=True):
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: dict[str, str] = {}
    admin_keys: tuple[str, ...] = ()
    max_upload_bytes: int = 512 * 1024 * 1024
    min_examples: int = 10
    worker_token: str = ""
    redis_url: str | None = None
    models_file: Path | None = msgspec.field(default_factory=lambda: models_file_path())  # the user's registry
    lease_seconds: float = 60.0
    profile: str = "default"
    dialect: Dialect = "openai"
    adapter_slots: int = 8
    full_model_slots: int = 2
    max_running_rows: int = 32  # rows the inference engine decodes at once, over every model and project
    max_request_rows: int = 1024  # prompts × n of one request
    max_request_tokens: int = 1 << 20  # prompt and completion tokens of one request's rows, all together
    python_grader_seconds: float = 120.0  # a python grader's wall time per sample, OpenAI's 2 minutes
    head_timeout_seconds: float = 10.0
    body_idle_seconds: float = 30.0
    body_grace_seconds: float = 10.0
    body_min_rate: float = 1024.0
    max_result_file_bytes: int = 64 * 1024**3
    public_hosts: tuple[str, ...] = ()
    quota_file_bytes: int = 0
    quota_active_jobs: int = 0
    webhook_retry_seconds: float = 5.0
    upload_expiry_seconds: int = 3600
    embedding_model: Path | None = None
    embedding_model_name: str = ""

    @property
    def database_path(self) -> Path:
        return self.data_dir / "gxft.sqlite3"

    @property
    def models_dir(self) -> Path:
        return models_dir(self.data_dir)

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / QUEUE_FILENAME


# A project's name becomes part of its fine-tuned models' names, so it keeps to characters a path carries.
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SettingsError(ValueError):
    pass


N = TypeVar("N", int, float)


def parse_api_keys(value: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        key, _, project = entry.partition("=")
        project = project.strip() or DEFAULT_PROJECT
        if not PROJECT_NAME.fullmatch(project):
            raise SettingsError(f"GXFT_API_KEYS: the project name {project!r} must be up to 64 letters, digits, "
                                "'-', '_' and '.', starting with a letter or digit.")
        keys[key.strip()] = project
    return keys


def _env_number(name: str, default: N, least: N) -> N:
    """The variable `name` as a number of the default's type, at least `least`; a mistyped one stops the start
    with its name rather than a traceback."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = type(default)(raw.strip())
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < least:
        kind = "a whole number" if isinstance(default, int) else "a number"
        raise SettingsError(f"{name} must be {kind} of at least {least}, not {raw!r}.")
    return value


def _worker_token(data_dir: Path) -> str:
    """The token workers present; generated once per data dir unless GXFT_WORKER_TOKEN is set."""
    if token := os.environ.get("GXFT_WORKER_TOKEN"):
        return token
    path = data_dir / "worker_token"
    try:  # created owner-only from the start: never readable by others, even for a moment
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def data_dir_path(data_dir: str | None = None) -> Path:
    return Path(data_dir or os.environ.get("GXFT_DATA_DIR") or "gxft-data").resolve()


def models_dir(data_dir: Path) -> Path:
    """Models converted from GGUF files and imported with `gxft models import`, with their registry."""
    return data_dir / "models"


SHIPPED_REGISTRY = REPO_ROOT / "sample_data" / "models" / "registry.toml"


def models_file_path() -> Path | None:
    """The user's own registry (GXFT_MODELS_FILE), which adds to the shipped one."""
    models_file = os.environ.get("GXFT_MODELS_FILE")
    return Path(models_file).resolve() if models_file else None


def _embedding_folder(value: str) -> Path:
    folder = Path(value).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise SettingsError(f"GXFT_EMBEDDING_MODEL: {folder} is not a model folder (it has no config.json); give "
                            "the folder of a sentence-transformers model, such as all-MiniLM-L6-v2.")
    return folder


def _dialect(value: str) -> Dialect:
    for dialect in DIALECTS:
        if value == dialect:
            return dialect
    raise SettingsError(f"The dialect must be one of {', '.join(DIALECTS)}, not {value!r}.")


def load_settings(
    data_dir: str | None = None, host: str | None = None, port: int | None = None, profile: str | None = None,
    dialect: str | None = None,
) -> Settings:
    env = os.environ
    chosen_dialect = _dialect(dialect or env.get("GXFT_DIALECT") or "openai")
    root = data_dir_path(data_dir)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    settings = Settings(
        data_dir=root,
        api_keys=parse_api_keys(env.get("GXFT_API_KEYS", "")),
        admin_keys=tuple(key.strip() for key in env.get("GXFT_ADMIN_KEYS", "").split(",") if key.strip()),
        max_upload_bytes=_env_number("GXFT_MAX_UPLOAD_BYTES", 512 * 1024 * 1024, 1),
        min_examples=_env_number("GXFT_MIN_EXAMPLES", 10, 1),
        worker_token=_worker_token(root),
        redis_url=env.get("GXFT_REDIS_URL") or None,
        lease_seconds=_env_number("GXFT_LEASE_SECONDS", 60.0, 1.0),
        profile=profile or env.get("GXFT_PROFILE") or "default",
        dialect=chosen_dialect,
        adapter_slots=_env_number("GXFT_ADAPTER_SLOTS", 8, 1),
        full_model_slots=_env_number("GXFT_FULL_MODEL_SLOTS", 2, 1),
        max_running_rows=_env_number("GXFT_MAX_RUNNING_ROWS", 32, 1),
        max_request_rows=_env_number("GXFT_MAX_REQUEST_ROWS", 1024, 1),
        max_request_tokens=_env_number("GXFT_MAX_REQUEST_TOKENS", 1 << 20, 1),
        python_grader_seconds=_env_number("GXFT_PYTHON_GRADER_SECONDS", 120.0, 0.1),
        head_timeout_seconds=_env_number("GXFT_HEAD_TIMEOUT_SECONDS", 10.0, 0.1),
        body_idle_seconds=_env_number("GXFT_BODY_IDLE_SECONDS", 30.0, 0.1),
        body_grace_seconds=_env_number("GXFT_BODY_GRACE_SECONDS", 10.0, 0.0),
        body_min_rate=_env_number("GXFT_BODY_MIN_RATE", 1024.0, 0.0),
        public_hosts=tuple(name.strip().lower() for name in env.get("GXFT_PUBLIC_HOSTS", "").split(",")
                           if name.strip()),
        max_result_file_bytes=_env_number("GXFT_MAX_RESULT_FILE_BYTES", 64 * 1024**3, 1),
        quota_file_bytes=_env_number("GXFT_QUOTA_FILE_BYTES", 0, 0),
        quota_active_jobs=_env_number("GXFT_QUOTA_ACTIVE_JOBS", 0, 0),
        webhook_retry_seconds=_env_number("GXFT_WEBHOOK_RETRY_SECONDS", 5.0, 0.01),
        upload_expiry_seconds=_env_number("GXFT_UPLOAD_EXPIRY_SECONDS", 3600, 1),
    )
    if folder := env.get("GXFT_EMBEDDING_MODEL", "").strip():
        settings.embedding_model = _embedding_folder(folder)
        name = env.get("GXFT_EMBEDDING_MODEL_NAME", "").strip()
        settings.embedding_model_name = name or settings.embedding_model.name
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    return settings
