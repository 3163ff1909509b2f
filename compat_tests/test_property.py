"""No input reaches a 500: every public operation of the server's own OpenAPI document, sent hostile
values by hypothesis (unicode digits, integers of hundreds of digits, floats at the edge of range,
control characters, path syntax, deep and wide objects), mixed with plausible ones so that requests
get past the first check and into the code behind it. Every answer must be below 500, and the server
log must hold no traceback. The budget and the seed are fixed, so a run is repeatable."""

import json
import urllib.parse
from pathlib import Path

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compat_tests.conftest import MEASUREMENTS
from compat_tests.server_process import ServerProcess
from compat_tests.test_files import chat_line, jsonl, processed
from compat_tests.test_fine_tuning import TINY, wait_done

CASES_PER_OPERATION = 40

WEIRD_TEXT = ["³⁶⁰⁰", "٣٦٠٠", "²", "1e400", "-0", "NaN", "\x00", "\u202e", "../../etc/passwd", "a/b:c", "ft:x:y:z",
              "9" * 5000, "", " ", "null", "true", "[]", "{}", "%00", "😀" * 50]
HUGE_NUMBERS = [10**400, -(10**400), 2**63, 2**64, -(2**63) - 1, 1.7976931348623157e308, -1e308, 5e-324, -1, 0]

leaves = st.one_of(
    st.sampled_from(WEIRD_TEXT), st.sampled_from(HUGE_NUMBERS), st.text(max_size=30), st.integers(),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
)
hostile = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)



def _plausible(real: dict) -> dict:
    """Values that pass the first checks (a real file, a real model), so that the hostile values beside them
    reach the code behind those checks; and hostile values placed where a field expects a structure."""
    from server.hyperparameters import BOUNDS

    digits = st.sampled_from(["1", "42", "²", "٣", "9" * 40, "-1", "0x1f"])
    return {
        "model": st.sampled_from([TINY, real["model"]]),
        "training_file": st.just(real["file_id"]),
        "max_tokens": st.integers(1, 3),
        "max_completion_tokens": st.integers(1, 3),
        "n": st.integers(1, 2),
        "seed": st.one_of(st.sampled_from(HUGE_NUMBERS), st.integers()),
        "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]),
                                                    "content": st.one_of(st.text(max_size=20), hostile)}),
                             min_size=1, max_size=3),
        "prompt": st.one_of(st.text(max_size=20), st.lists(st.integers(-5, 3000), min_size=1, max_size=5)),
        "logit_bias": st.dictionaries(digits, st.one_of(st.sampled_from(HUGE_NUMBERS), hostile), max_size=3),
        "hyperparameters": st.dictionaries(st.sampled_from(sorted(BOUNDS)), st.one_of(st.sampled_from(HUGE_NUMBERS),
                                                                                    hostile), max_size=4),
        "stop": st.one_of(st.lists(st.text(max_size=5), max_size=5), hostile),
        "purpose": st.sampled_from(["fine-tune", "user_data", "batch"]),
        "expires_after[anchor]": st.just("created_at"),
        "expires_after[seconds]": st.sampled_from(["³⁶⁰⁰", "3600", "9" * 5000, "-3600", "3600.5"]),
        "format": st.sampled_from(["adapter", "merged"]),
    }


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    """A server with a trained model, a file and a job, so that hostile requests can name real objects."""
    server = ServerProcess(tmp_path_factory.mktemp("property") / "data", worker=True)
    client = server.client()
    training = processed(client, jsonl(chat_line(i) for i in range(12)))
    job = wait_done(client, client.fine_tuning.jobs.create(model=TINY, training_file=training.id,
                                                          hyperparameters={"n_epochs": 1}).id, patience=120)
    assert job.status == "succeeded", job.error
    real = {"file_id": training.id, "fine_tuning_job_id": job.id, "job_id": job.id, "model": job.fine_tuned_model,
            "checkpoint_id": client.fine_tuning.jobs.checkpoints.list(job.id).data[0].id}
    yield server, real
    server.stop()
    MEASUREMENTS.append(f"property test: {_COUNTS['requests']} requests over {len(OPERATIONS)} operations, "
                        f"answers by status: {dict(sorted(_COUNTS['status'].items()))}")


def _operations() -> list[tuple[str, str]]:
    from server.app import create_app
    from server.config import Settings
    from server.openapi import openapi_document

    document = openapi_document(create_app(Settings(data_dir=Path("/nonexistent"))).routes, "GXFT", "test")
    return [(method.upper(), path) for path, operations in document["paths"].items() for method in operations]


OPERATIONS = _operations()
_DOCUMENT: dict = {}
_COUNTS = {"requests": 0, "status": {}}


def _document(server: ServerProcess) -> dict:
    if not _DOCUMENT:
        _DOCUMENT.update(httpx2.get(server.base_url + "/openapi.json").json())
    return _DOCUMENT


def _value(data, plausible: dict, name: str):
    strategy = st.one_of(plausible[name], hostile) if name in plausible else hostile
    return data.draw(strategy, label=name)


def _send(server: ServerProcess, real: dict, plausible: dict, method: str, path: str,
          data) -> httpx2.Response:
    operation = _document(server)["paths"][path][method.lower()]
    url_path = path
    query: list[tuple[str, str]] = []
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            value = data.draw(st.one_of(st.just(real.get(name, "x")), st.sampled_from(WEIRD_TEXT),
                                        st.text(max_size=20)))
            url_path = url_path.replace("{" + name + "}", urllib.parse.quote(str(value), safe=""))
        elif parameter.get("style") == "deepObject":
            count = data.draw(st.sampled_from([0, 1, 16, 17, 1200]), label=f"{name} keys")
            query += [(f"{name}[k{i}]", "v") for i in range(count)]
        elif data.draw(st.booleans(), label=f"send {name}"):
            query.append((name, str(_value(data, plausible, name))))
    headers = {"Authorization": "Bearer sk-test"}
    body = operation.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        schema = body["application/json"]["schema"]
        if "$ref" in schema:
            schema = _document(server)["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        fields = {name: _value(data, plausible, name) for name in schema.get("properties", {})
                  if name in schema.get("required", []) or data.draw(st.booleans(), label=f"send {name}")}
        if "max_tokens" in schema.get("properties", {}):  # generation stays short whatever else is sent
            fields.setdefault("max_tokens", 2)
        raw = data.draw(st.sampled_from([json.dumps(fields), json.dumps(fields)[:-1], "[" * 2000, ""]),
                        label="body") if data.draw(st.integers(0, 9)) == 0 else json.dumps(fields)
        return httpx2.request(method, server.base_url + url_path, params=query, content=raw, timeout=120,
                              headers={**headers, "Content-Type": "application/json"})
    if "multipart/form-data" in body:
        form = {name: str(_value(data, plausible, name)) for name in ("purpose", "expires_after[anchor]",
                                                          "expires_after[seconds]") if data.draw(st.booleans())}
        filename = data.draw(st.one_of(st.just("train.jsonl"), st.sampled_from(WEIRD_TEXT)), label="filename")
        content = data.draw(st.one_of(st.just(jsonl(chat_line(i) for i in range(10))), st.binary(max_size=200)))
        return httpx2.request(method, server.base_url + url_path, params=query, data=form, timeout=120,
                              files={"file": (filename, content)}, headers=headers)
    return httpx2.request(method, server.base_url + url_path, params=query, headers=headers, timeout=120)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_input_reaches_a_500(target, method, path):
    server, real = target
    plausible = _plausible(real)

    @settings(max_examples=CASES_PER_OPERATION, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def case(data):
        answer = _send(server, real, plausible, method, path, data)
        _COUNTS["requests"] += 1
        _COUNTS["status"][answer.status_code] = _COUNTS["status"].get(answer.status_code, 0) + 1
        assert answer.status_code < 500, answer.text[:500]

    case()
    assert "Traceback" not in server.log()

