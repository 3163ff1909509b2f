"""Exporting a fine-tuned model as files: its LoRA adapter as trained, or merged full weights.

Adapters are saved by peft without `modules_to_save` or DoRA and state their rank, so vLLM and
peft load them as they are. A merged export folds the adapter into a fresh copy of the base
(never the copy being served) and saves weights, config and tokenizer: a folder that
`from_pretrained` and vLLM load without peft.
"""

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from server.errors import invalid_request
from server.files.store import FileStore
from server.model_catalog import ServedModel, WeightsFolder
from storage.files import FileRecord

ExportFormat = Literal["adapter", "merged"]


def export_format(served: ServedModel, requested: ExportFormat | None) -> ExportFormat:
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
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from modeling.loading import load_model
    from server.serving.model_cache import base_model_folder

    assert served.weights is not None
    base = served.base
    # In float32 on the CPU, whatever serves the model: the merged weights are a copy to keep.
    model = load_model(base_model_folder(base), torch.device("cpu"), base.id, dtype=torch.float32)
    with WeightsFolder(served.name, served.weights) as folder:
        merged = PeftModel.from_pretrained(model, folder).merge_and_unload()
    merged.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base.path).save_pretrained(out_dir)
    return sorted(path for path in out_dir.iterdir() if path.is_file())


def merged_files(served: ServedModel, project: str, files: FileStore) -> list[FileRecord]:
    out_dir = Path(tempfile.mkdtemp(prefix="export-", dir=files.blobs.temp_dir))
    try:
        return files.adopt_paths(project, merge_adapter(served, out_dir))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
