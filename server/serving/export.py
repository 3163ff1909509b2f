"""Exporting a fine-tuned model as files: its LoRA adapter as trained, or merged full weights.

Adapters are saved by peft without `modules_to_save` or DoRA and state their rank, so vLLM and
peft load them as they are. A merged export folds the adapter into a fresh copy of the base
(never the copy being served) and saves weights, config and tokenizer: a folder that
`from_pretrained` and vLLM load without peft.
"""

import shutil
import tempfile
import time
from pathlib import Path

from server.errors import invalid_request
from server.model_catalog import ServedModel, WeightsFolder
from storage.blobs import BlobStore
from storage.files import FileRecord, FileRepository
from storage.ids import new_id


def export_format(served: ServedModel, requested: str | None) -> str:
    if served.weights is None:
        raise invalid_request(
            f"{served.name} is a base model; only fine-tuned models can be exported.", param="model"
        )
    if requested == "adapter" and served.weights.kind != "adapter":
        raise invalid_request(
            f"{served.name} was fine-tuned on all its weights and has no adapter; export it as 'merged'.",
            param="format",
        )
    return requested or ("adapter" if served.weights.kind == "adapter" else "merged")


def merge_adapter(served: ServedModel, out_dir: Path) -> list[Path]:
    """Runs in a thread: loading and merging take seconds to minutes, with the weights in memory."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = served.base
    model = AutoModelForCausalLM.from_pretrained(base.path)
    with WeightsFolder(served.name, served.weights) as folder:
        merged = PeftModel.from_pretrained(model, folder).merge_and_unload()
    merged.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base.path).save_pretrained(out_dir)
    return sorted(path for path in out_dir.iterdir() if path.is_file())


def store_files(paths: list[Path], project: str, files: FileRepository, blobs: BlobStore) -> list[FileRecord]:
    records = []
    for path in paths:
        file_id = new_id("file-")
        size = path.stat().st_size
        blobs.adopt(file_id, path)
        record = FileRecord(id=file_id, project=project, filename=path.name, purpose="fine-tune-results",
                            bytes=size, created_at=int(time.time()), status="processed")
        files.insert(record)
        records.append(record)
    return records


def merged_files(served: ServedModel, project: str, files: FileRepository, blobs: BlobStore) -> list[FileRecord]:
    out_dir = Path(tempfile.mkdtemp(prefix="export-", dir=blobs.temp_dir))
    try:
        return store_files(merge_adapter(served, out_dir), project, files, blobs)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
