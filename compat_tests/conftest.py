import os
from pathlib import Path

import pytest

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
