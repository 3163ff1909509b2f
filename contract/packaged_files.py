"""Where a registry's `gguf = "package/file.gguf"` is: inside an installed Python package, found on each machine
for itself. The server checks that the file is there before it offers the model; a worker on another machine
looks for the package in its own Python when it converts the model, since its install path may differ."""

import importlib.util
from pathlib import Path


def gguf_path(reference: str) -> Path | None:
    """A GGUF file given as a path, or as `package/file` inside an installed package; None where it is neither."""
    path = Path(reference)
    return path if path.is_file() else packaged_file(reference)


def packaged_file(reference: str) -> Path | None:
    """`package/file` inside an installed Python package, or None where that package or file is missing. Found
    without importing the package: one that ships a model file may import tools GXFT does not need, or lacks."""
    package, _, name = reference.partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if (candidate := Path(location) / name).is_file():
            return candidate
    return None
