import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from compat_tests.documentation_blocks import quick_start_block, readme_serve_command, run_block
from compat_tests.server_process import ServerProcess

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


TOOL_CITIES = ["Paris", "Oslo", "Rome", "Lima"]  # few, so that the tiny model learns which city each asks for
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


@pytest.fixture(scope="session")
def qa_model(server) -> str:
    """gxft/tiny-chat with a LoRA adapter that learned test_serving's two answers: the fine-tuned model that several
    modules' serving tests call. (Imported here, not at the top: those test modules import this one.)"""
    from compat_tests.test_fine_tuning import TINY, wait_done
    from compat_tests.test_serving import RECIPE, qa_file

    client = server.client()
    job = wait_done(client, client.fine_tuning.jobs.create(
        model=TINY, training_file=qa_file(client).id, seed=0, suffix="qa",
        hyperparameters={**RECIPE, "lora": True}).id, patience=180)
    assert job.status == "succeeded", job.error
    return job.fine_tuned_model


@pytest.fixture(scope="session")
def tool_model(server) -> str:
    """gxft/tiny-chat fine-tuned (all its weights) on tool-calling conversations of four cities: it calls
    get_weather with the city asked for, and answers the tool's result with a trained sentence."""
    from compat_tests.test_files import jsonl, processed
    from compat_tests.test_fine_tuning import TINY, wait_done
    from compat_tests.test_training_methods import tool_row

    client = server.client()
    training = processed(client, jsonl(tool_row(city) for city in TOOL_CITIES * 5), "tools.jsonl")
    job = wait_done(client, client.fine_tuning.jobs.create(
        model=TINY, training_file=training.id, seed=0, suffix="tools",
        hyperparameters={"n_epochs": 30, "batch_size": 2, "learning_rate": 3e-3, "lora": False}).id, patience=300)
    assert job.status == "succeeded", job.error
    return job.fine_tuned_model


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
