"""`/openapi.json` describes every public route, and the live server keeps to it under schemathesis; so it does
to OpenAI's own document (compat_tests/openai_deviations.py), with the deviations listed there."""

import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from starlette.routing import Route

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.openai_deviations import write_document_with_deviations
from compat_tests.server_process import ServerProcess
from server.app import create_app
from server.config import Settings

SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
OPENAI_CONFIG = Path(__file__).with_name("schemathesis-openai.toml")


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("openapi") / "data",
                            env={"GXFT_API_KEYS": "key-a", "GXFT_ADMIN_KEYS": "key-admin"}, worker=False)
    yield process
    process.stop()


def test_document_lists_every_public_route_with_its_types(keyed_server, tmp_path):
    response = httpx2.get(keyed_server.base_url + "/openapi.json")  # no key: the document is public
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    app = create_app(Settings(data_dir=tmp_path))
    public = {
        (route.path.replace(":path}", "}"), method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith(("/v1/", "/v0/"))
        for method in route.methods or () if method != "HEAD"
    }
    assert documented == public
    create = document["paths"]["/v1/fine_tuning/jobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateFineTuningJobRequest"
    }
    job = document["components"]["schemas"]["FineTuningJob"]
    assert "paused" in job["properties"]["status"]["enum"]
    upload = document["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["file"] == {"type": "string", "format": "binary"}
    assert "507" in document["paths"]["/v1/files"]["post"]["responses"]
    limit = next(p for p in document["paths"]["/v1/fine_tuning/jobs"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 1000


def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(keyed_server):
    """A fixed budget (schemathesis.toml): a deterministic set of cases per operation, every check on."""
    run = _schemathesis("--config-file", str(SCHEMATHESIS_CONFIG), "run",
                        keyed_server.base_url + "/openapi.json")  # the keys are in schemathesis.toml
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "passed" in run.stdout and " failed" not in run.stdout
    server_log = keyed_server.log()
    assert "Traceback" not in server_log, server_log[-4000:]


def _schemathesis(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "schemathesis.cli", *arguments, "--no-color"],
                          capture_output=True, text=True, timeout=600)


def test_schemathesis_from_openai_document_finds_nothing_off_it_but_the_deviations_listed(keyed_server, tmp_path):
    """OpenAI's document drives the cases and judges the answers (schema, status code, content type): a fixed
    budget and seed (schemathesis-openai.toml), over a file, a job and an upload that exist."""
    client = keyed_server.client("key-a")
    training = client.files.create(file=SAMPLE_DATA / "sample_training_data.jsonl", purpose="fine-tune")
    client.files.wait_for_processing(training.id, poll_interval=0.05, max_wait_seconds=30)
    job = client.fine_tuning.jobs.create(model="gxft/tiny-chat", training_file=training.id)
    upload = client.uploads.create(bytes=10, filename="x.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    dictionaries = {"files": training.id, "jobs": job.id, "uploads": upload.id, "models": "gxft/tiny-chat"}
    config = tmp_path / "schemathesis.toml"
    config.write_text(OPENAI_CONFIG.read_text() + "".join(
        f'\n[dictionaries.{name}]\nvalues = ["{value}"]\n' for name, value in dictionaries.items()))
    run = _schemathesis("--config-file", str(config), "run", str(write_document_with_deviations(tmp_path)),
                        "--url", keyed_server.base_url + "/v1")
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Selected: 37/37" in run.stdout and " failed" not in run.stdout
    assert "Traceback" not in keyed_server.log()
