import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from compat_tests.documentation_blocks import quick_start_block, readme_serve_command, run_block
from compat_tests.server_process import ServerProcess

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


MEASUREMENTS: list[str] = []


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("GXFT measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)


def unavailable(reason: str) -> None:
    """What a test needs is missing: a skip on a developer's machine, a failure in CI (.ci/run provides it)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> ServerProcess:
    """One server with its embedded worker, shared by the tests that need no special settings."""
    process = ServerProcess(tmp_path_factory.mktemp("shared") / "data")
    yield process
    process.stop()


@pytest.fixture
def start_server(tmp_path):
    """Start servers with their own settings; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, worker: bool = False, name: str = "data") -> ServerProcess:
        process = ServerProcess(tmp_path / name, env=env, worker=worker)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def client(server):
    return server.client()


@pytest.fixture(scope="session")
def readme_server(smollm2_folder, tmp_path_factory) -> ServerProcess:
    """The server the README's first command starts, its data dir holding the converted SmolLM2 as the first
    use leaves it; the README's blocks and the real-model tests share it, and with it the quick start's job."""
    from conftest import SMOLLM2_FOLDER_NAME

    data_dir = tmp_path_factory.mktemp("readme") / "data"
    (data_dir / "models").mkdir(parents=True)
    (data_dir / "models" / SMOLLM2_FOLDER_NAME).symlink_to(smollm2_folder)
    process = ServerProcess(data_dir, serve=readme_serve_command(), log_level="info")
    yield process
    process.stop()


@dataclass(frozen=True)
class QuickStartRun:
    result: subprocess.CompletedProcess[str]
    seconds: float


@pytest.fixture(scope="session")
def quick_start(readme_server) -> QuickStartRun:
    """The README's quick start, run as pasted: it uploads the invented facts, fine-tunes SmolLM2 on them and
    asks the base and the tuned model one of them."""
    started = time.monotonic()
    result = run_block(quick_start_block(), readme_server.base_url)
    seconds = time.monotonic() - started
    MEASUREMENTS.append(f"The README's quick start (SmolLM2 already converted): {seconds:.1f} s")
    return QuickStartRun(result, seconds)
