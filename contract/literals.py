"""The closed sets of values that the server, its storage and its workers all name."""

from typing import Literal, get_args

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"]
TERMINAL_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")

Method = Literal["supervised", "dpo", "reinforcement"]
METHODS: tuple[Method, ...] = get_args(Method)

FileStatus = Literal["uploaded", "processed", "error"]
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
FilePurpose = Literal[UploadPurpose, "assistants_output", "batch_output", "fine-tune-results"]
UPLOAD_PURPOSES: tuple[str, ...] = get_args(UploadPurpose)
# Of an upload sent in parts (the Uploads API).
UploadStatus = Literal["pending", "completed", "cancelled", "expired"]

# reinforcement: prompts (chat messages that end with a user turn), their other fields the graders' item.
DataFormat = Literal["chat", "preference", "prompt_completion", "alpaca", "text", "reinforcement"]

EventLevel = Literal["info", "warn", "error"]
EventType = Literal["message", "metrics"]

# What a checkpoint holds: a LoRA adapter on its base model, or every weight of a model of its own.
WeightsKind = Literal["adapter", "full"]
