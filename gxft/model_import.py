"""`gxft models import SOURCE`: a model folder, a GGUF file or a hub id, checked and written into the data
dir, then registered in the data dir's registry, which a running server reads again within a second."""

import argparse
import fcntl
import json
import os
import sys
import time
from pathlib import Path

from server.base_models import IMPORTED_REGISTRY, BaseModelRegistry, RegistryError, converted_folder, valid_model_name
from server.config import data_dir_path, models_dir


def _say(message: str) -> None:
    print(f"gxft models import: {message}", file=sys.stderr, flush=True)


def default_id(source: str) -> str:
    path = Path(source)
    if path.suffix == ".gguf":
        return path.stem
    return path.resolve().name if path.exists() else source


def models_import(args: argparse.Namespace) -> int:
    from modeling.importing import ImportRefused, ensure_converted, import_model

    target_dir = models_dir(data_dir_path(args.data_dir))
    try:
        registry = BaseModelRegistry.load_default(args.data_dir)
    except RegistryError as exc:
        _say(str(exc))
        return 2
    started = time.monotonic()
    known = registry.get(args.source)
    if known is not None and args.model_id is None:
        if known.gguf is None:
            _say(f"{args.source} is already a model of this server ({known.path}); nothing to import.")
            return 1
        try:
            ensure_converted(known.gguf, Path(known.path), _say)
        except ImportRefused as exc:
            _say(str(exc))
            return 1
        print(f"{known.id}: ready in {known.path} ({time.monotonic() - started:.0f} s)")
        return 0
    model_id = args.model_id or default_id(args.source)
    if not valid_model_name(model_id):
        _say(f"the id {model_id!r} must be letters, digits, '-', '_', '.' and single '/', starting with a letter "
             "or digit (fine-tuned models are named after it); choose one with --id.")
        return 2
    if registry.get(model_id) is not None:
        _say(f"{model_id} is already a model of this server; choose another name with --id.")
        return 1
    folder = converted_folder(target_dir, model_id)
    if folder.exists():
        _say(f"{folder} already exists; remove it, or choose another name with --id.")
        return 1
    try:
        imported = import_model(args.source, folder, _say, args.context_length)
    except (ImportRefused, OSError) as exc:
        _say(f"{args.source} was not imported: {exc}")
        return 1
    register(target_dir, model_id, folder, imported.context_length)
    for fix in imported.fixes:
        _say(f"fixed: {fix}")
    print(f"{model_id}: imported into {folder} in {time.monotonic() - started:.0f} s (turns end with "
          f"{imported.end_of_turn}, context {imported.context_length} tokens); a running server offers it now")
    return 0


def register(target_dir: Path, model_id: str, folder: Path, context_length: int) -> None:
    """Add the model to the data dir's registry, replacing the file whole so that a reader never sees half."""
    registry = target_dir / IMPORTED_REGISTRY
    entry = (f"\n[[models]]\nid = {json.dumps(model_id)}\npath = {json.dumps(folder.name)}\n"
             f"context_length = {context_length}\n")
    with open(target_dir / f".{IMPORTED_REGISTRY}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = registry.read_text() if registry.exists() else (
            "# Models imported with `gxft models import`, in the format of sample_data/models/registry.toml.\n")
        partial = registry.with_name(f".{IMPORTED_REGISTRY}.partial")
        partial.write_text(text + entry)
        os.replace(partial, registry)
