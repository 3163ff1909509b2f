"""The public wire objects of `/v1`, each defined once: the server encodes them, the tests decode them.

Shapes follow OpenAI's fine-tuning, files and models API reference, with Nebius's extra fields where
noted. The error envelope is in contract/error_envelope.py, since workers read it too.
"""

from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from contract.literals import EventLevel, EventType, FilePurpose, FileStatus, JobStatus, UploadPurpose, UploadStatus

T = TypeVar("T")

EXPIRY_SECONDS = (3600, 2592000)


class ListPage(msgspec.Struct, Generic[T]):
    data: list[T]
    has_more: bool
    first_id: str | None = None
    last_id: str | None = None
    object: Literal["list"] = "list"


class DeletedObject(msgspec.Struct):
    id: str
    object: str
    deleted: bool


class FileUploadFields(msgspec.Struct, kw_only=True):
    """The text fields of `POST /v1/files`, decoded from the form as server/files/multipart.py receives it."""

    purpose: UploadPurpose
    expires_after_anchor: Literal["created_at"] | None = msgspec.field(default=None, name="expires_after[anchor]")
    expires_after_seconds: Annotated[int, msgspec.Meta(ge=EXPIRY_SECONDS[0], le=EXPIRY_SECONDS[1])] | None = (
        msgspec.field(default=None, name="expires_after[seconds]")
    )


class FileUploadForm(FileUploadFields, kw_only=True):
    """The whole multipart/form-data body, for the OpenAPI document: the fields and the `file` part."""

    file: bytes


# Query parameters of the list endpoints; unknown parameters are ignored, as OpenAI ignores them.

class FileListQuery(msgspec.Struct, kw_only=True):
    after: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 10000
    order: Literal["asc", "desc"] = "desc"
    purpose: str | None = None


class JobListQuery(msgspec.Struct, kw_only=True):
    after: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    # `metadata[key]=value` keeps jobs with that metadata; `metadata=null` those with none.
    metadata: Annotated[dict[str, str], msgspec.Meta(max_length=16)] | Literal["null"] = {}  # as many as a job holds


class EventListQuery(msgspec.Struct, kw_only=True):
    after: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 20
    # GXFT's own: unset, the order of the server's dialect (OpenAI's newest first, Nebius's oldest first).
    order: Literal["asc", "desc"] | None = None


class CheckpointListQuery(msgspec.Struct, kw_only=True):
    after: str | None = None
    # Unset: OpenAI's 10, or on a server of Nebius's dialect 100, every epoch's checkpoint (n_epochs ≤ 50), so
    # that the last of the first page is the last checkpoint, as Nebius's sample takes it.
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    order: Literal["asc", "desc"] | None = None  # as EventListQuery's


class CheckpointPermissionListQuery(msgspec.Struct, kw_only=True):
    project_id: str | None = None
    after: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 10
    order: Literal["ascending", "descending"] = "descending"


class CreateCheckpointPermissionRequest(msgspec.Struct, forbid_unknown_fields=True):
    project_ids: Annotated[list[str], msgspec.Meta(min_length=1, max_length=100)]


class CheckpointPermission(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["checkpoint.permission"] = "checkpoint.permission"
    created_at: int
    project_id: str


class FileObject(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: FilePurpose
    status: FileStatus
    status_details: str | None = None
    expires_at: int | None = None


# The Uploads API: a file of up to 8 GiB sent in parts of up to 64 MiB.
MAX_UPLOAD_BYTES = 8 * 1024**3
MAX_PART_BYTES = 64 * 1024**2


class FileExpiresAfter(msgspec.Struct, forbid_unknown_fields=True):
    anchor: Literal["created_at"]
    seconds: Annotated[int, msgspec.Meta(ge=EXPIRY_SECONDS[0], le=EXPIRY_SECONDS[1])]


class CreateUploadRequest(msgspec.Struct, forbid_unknown_fields=True):
    bytes: Annotated[int, msgspec.Meta(ge=0, le=MAX_UPLOAD_BYTES)]
    filename: str
    mime_type: str  # kept, not checked: a fine-tuning file's content is what is validated
    purpose: UploadPurpose
    expires_after: FileExpiresAfter | msgspec.UnsetType = msgspec.UNSET  # of the file the upload becomes


class CompleteUploadRequest(msgspec.Struct, forbid_unknown_fields=True):
    part_ids: list[str]
    md5: str | msgspec.UnsetType = msgspec.UNSET


class UploadPartForm(msgspec.Struct):
    """The multipart/form-data body of `POST /v1/uploads/{upload_id}/parts`, for the OpenAPI document."""

    data: bytes


class Upload(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: UploadStatus
    expires_at: int
    file: FileObject | None = None


class UploadPart(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str


class JobError(msgspec.Struct):
    code: str
    message: str
    param: str | None = None


class WandbIntegration(msgspec.Struct, forbid_unknown_fields=True):
    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] = []
    # Nebius's; write-only (UNSET in answers, so never encoded): kept for the worker, never answered.
    api_key: str | msgspec.UnsetType = msgspec.UNSET


class MlflowIntegration(msgspec.Struct, forbid_unknown_fields=True):
    """Nebius's. The credentials are write-only: kept for the worker, never answered."""

    tracking_uri: str
    experiment_name: str
    run_name: str | None = None
    tags: dict[str, str] = {}
    username: str | msgspec.UnsetType = msgspec.UNSET
    password: str | msgspec.UnsetType = msgspec.UNSET
    certificate_file: str | None = None  # a CA bundle's path on the worker's machine
    certificate_file_id: str | None = None


class HfIntegration(msgspec.Struct, forbid_unknown_fields=True):
    """Nebius's export of the result to a Hugging Face repository; refused, as GXFT never reaches the hub."""

    output_repo_name: str
    api_token: str | msgspec.UnsetType = msgspec.UNSET


class WandbEntry(msgspec.Struct, tag_field="type", tag="wandb", forbid_unknown_fields=True):
    wandb: WandbIntegration


class MlflowEntry(msgspec.Struct, tag_field="type", tag="mlflow", forbid_unknown_fields=True):
    mlflow: MlflowIntegration


class HfEntry(msgspec.Struct, tag_field="type", tag="hf", forbid_unknown_fields=True):
    hf: HfIntegration


Integration = WandbEntry | MlflowEntry | HfEntry
# Integration fields a job takes but never answers.
WRITE_ONLY_INTEGRATION_FIELDS = frozenset({"api_key", "username", "password", "api_token"})


class CreateFineTuningJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Both dialects: OpenAI's (`method` or `hyperparameters` with `learning_rate_multiplier`) and
    Nebius's (`hyperparameters` with `learning_rate`, `lora`, `packing`, …)."""

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    suffix: str | None = None
    seed: int | None = None
    metadata: dict[str, str] | None = None
    integrations: list[Integration] | None = None
    tags: list[str] | None = None  # Nebius's
    # Nebius's: {"type": "ft"} continues from the fine-tuned model or checkpoint named in `model`.
    from_checkpoint: dict[str, Any] | None = None


class FineTuningJob(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: dict[str, Any]
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: JobStatus
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[Integration] = []
    metadata: dict[str, str] | None = None
    tags: list[str] = []  # Nebius's
    method: dict[str, Any]
    user_provided_suffix: str | None = None
    # Nebius's progress fields.
    trained_steps: int = 0
    total_steps: int | None = None
    # Nebius's: set when the job continues from a fine-tuned model (then `model` names it).
    from_checkpoint: dict[str, Any] | None = None


class FineTuningJobEvent(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: EventLevel
    message: str
    type: EventType = "message"
    data: dict[str, Any] = {}


class FineTuningJobCheckpoint(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    step_number: int
    metrics: dict[str, float]
    # Nebius's: the ids of the files that hold this checkpoint (adapter or full weights).
    result_files: list[str]


class FineTuningSupport(msgspec.Struct, kw_only=True):
    """GXFT's own: how this model can be fine-tuned (further) on this server now."""

    methods: list[str]  # what `method.type` accepts
    quantization: list[str]  # ["nf4"] while a worker with a CUDA GPU is connected (QLoRA)


class Model(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    shutdown_date: str | None = None
    # Lineage, as vLLM's model cards give it: `root` is the base model in the registry, `parent` the
    # model a fine-tuned one was trained from (a base model, or for a continued job a fine-tuned one).
    root: str | None = None
    parent: str | None = None
    fine_tuning: FineTuningSupport | None = None


class ModelList(msgspec.Struct):
    """Not paginated, as OpenAI's `GET /models`."""

    data: list[Model]
    object: Literal["list"] = "list"


class ExportModelRequest(msgspec.Struct, forbid_unknown_fields=True):
    # "adapter": the LoRA adapter as trained. "merged": full weights with the adapter folded in,
    # loadable by `from_pretrained` and vLLM without peft. Default: the adapter when there is one.
    format: Literal["adapter", "merged"] | None = None


class ModelExport(msgspec.Struct, kw_only=True):
    """GXFT's own: the files of a fine-tuned model, each downloadable with `files.content(id)`."""

    object: Literal["model.export"] = "model.export"
    model: str
    format: Literal["adapter", "merged"]
    files: list[FileObject]


# Nebius's custom models (`/v0/models`): a fine-tuned LoRA adapter deployed under a name of its own.

CustomModelStatus = Literal["validating", "active", "error", "deleted"]


class CreateCustomModelRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    base_model: str
    # `ftjob-…:ftckpt_…`, a fine-tuned model's name (`ft:…`), the id of a checkpoint's result file, or a
    # Hugging Face URL (refused: GXFT never downloads).
    source: str
    description: str | None = None


class CustomModel(msgspec.Struct, kw_only=True):
    type: Literal["text2text"] = "text2text"
    name: str
    base_model: str
    source: str
    description: str | None
    created_at: int
    # GXFT checks a source while it answers, so a model is `active` from its creation, or `error` once its
    # checkpoint is deleted (then `status_reason` says so), or `deleted`.
    status: CustomModelStatus
    status_reason: str | None = None
    checkpoint_id: str
    job_id: str
    file_id: str | None = None
    url: str | None = None
    tags: list[str] = msgspec.field(default_factory=lambda: ["lora"])
    use_cases: list[str] = msgspec.field(default_factory=lambda: ["lora"])
    context_window_k: int
