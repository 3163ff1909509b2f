"""The import rules that keep the server and its workers apart, read from the code itself.

- contract/ (what server and worker share) imports only the standard library, msgspec and huey;
- storage/ imports neither server/ nor worker/ (it is the server's, below it);
- worker/ imports the contract, modeling/, grading/ and its own modules only: a worker needs none of the server;
- modeling/ (model loading for training, serving and the CLI) imports none of server/, worker/, storage/;
- grading/ (the graders, run by the server and by workers) imports none of them, nor torch;
- server/ imports no training code (worker/), and torch only once it serves a model.

Every import counts, also one inside a function: a lazy import is still a dependency.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("contract", "gxft", "grading", "modeling", "server", "storage", "worker")

# package → the top-level names it may not import (of this repository's packages, or any at all).
FORBIDDEN = {
    "storage": {"server", "worker", "gxft", "modeling"},
    "worker": {"server", "storage", "gxft"},
    "modeling": {"server", "worker", "storage", "gxft"},
    "grading": {"server", "worker", "storage", "gxft", "modeling", "torch"},
    "server": {"worker", "gxft"},
}
CONTRACT_MAY_IMPORT = {"contract", "msgspec", "huey"}


def imports_of(package: str) -> list[tuple[str, int, str]]:
    """(file, line, imported module) for every import in the package."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [package] if node.level else [node.module or ""]
            else:
                continue
            found += [(str(path.relative_to(ROOT)), node.lineno, name) for name in names]
    return found


def breaks(package: str) -> list[str]:
    problems = []
    for path, line, module in imports_of(package):
        top = module.split(".")[0]
        if package == "contract":
            allowed = top in CONTRACT_MAY_IMPORT or top in sys.stdlib_module_names
        else:
            allowed = top not in FORBIDDEN.get(package, set())
        if not allowed:
            problems.append(f"{path}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("package", ["contract", *FORBIDDEN])
def test_package_keeps_its_import_rule(package):
    assert breaks(package) == [], f"{package}/ breaks its import rule (see this module's docstring)"


def test_the_rules_see_every_package():
    """A new top-level package must be placed under the rules, or knowingly left out (the CLI may import all)."""
    on_disk = {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "compat_tests"}
    assert on_disk == set(PACKAGES)


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_the_server_starts_without_torch():
    loaded = _modules_loaded_by("import server.app, server.endpoints.completions, server.serving.engine")
    assert not loaded & {"torch", "transformers", "peft", "modeling", "worker"}


def test_a_worker_loads_none_of_the_server():
    loaded = _modules_loaded_by("import worker.main, worker.runner")
    assert not loaded & {"server", "storage", "starlette", "uvicorn"}
