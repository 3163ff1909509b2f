"""OpenAI's graders API through the strict client: `client.fine_tuning.alpha.graders.run` and `.validate`
for every grader type, the error flags of a sample that cannot be graded, what validate refuses (a 400
naming the field), and the python grader's limits as they are enforced: no network, time, memory."""

import json
import socket
import threading

import openai
import pytest

from compat_tests.test_fine_tuning import TINY
from conftest import SMOLLM2

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}", "reference": "{{item.label}}",
         "operation": "eq"}


def _run(client, grader: dict, sample: str, item: dict | None = None):
    return client.fine_tuning.alpha.graders.run(grader=grader, model_sample=sample,
                                                **({"item": item} if item is not None else {}))


def _raised(errors) -> list[str]:
    return [name for name, value in errors.model_dump().items() if value is True]


def _refusal(call) -> openai.BadRequestError:
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    return caught.value


@pytest.fixture(scope="module")
def graders_client(start_server_module):
    return start_server_module.client()


@pytest.fixture(scope="module")
def start_server_module(tmp_path_factory):
    from compat_tests.server_process import ServerProcess

    process = ServerProcess(tmp_path_factory.mktemp("graders") / "data", worker=False,
                            env={"GXFT_PYTHON_GRADER_SECONDS": "1"})
    yield process
    process.stop()


@pytest.mark.parametrize(("operation", "sample", "reward"), [
    ("eq", "Paris", 1.0), ("eq", "paris", 0.0), ("ne", "Rome", 1.0), ("like", "It is Paris.", 1.0),
    ("like", "It is paris.", 0.0), ("ilike", "IT IS PARIS", 1.0),
])
def test_string_check(graders_client, operation, sample, reward):
    result = _run(graders_client, {**EXACT, "operation": operation}, sample, {"label": "Paris"})
    assert result.reward == reward
    assert result.metadata.type == "string_check" and result.metadata.name == "exact"
    assert _raised(result.metadata.errors) == []
    assert result.metadata.scores == {"exact": reward}


@pytest.mark.parametrize(("metric", "low", "high"), [
    ("fuzzy_match", 0.9, 0.97), ("bleu", 0.45, 0.6), ("gleu", 0.55, 0.65), ("meteor", 0.7, 0.8),
    ("rouge_1", 0.8, 0.85), ("rouge_2", 0.55, 0.65), ("rouge_3", 0.45, 0.55), ("rouge_4", 0.2, 0.4),
    ("rouge_5", 0.0, 0.01), ("rouge_l", 0.8, 0.85),
])
def test_text_similarity_metrics(graders_client, metric, low, high):
    grader = {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}",
              "reference": "{{item.answer}}", "evaluation_metric": metric}
    close = _run(graders_client, grader, "the cat sat on the mat", {"answer": "the cat sat on a mat"}).reward
    same = _run(graders_client, grader, "the cat sat on a mat today", {"answer": "the cat sat on a mat today"}).reward
    unrelated = _run(graders_client, grader, "xyz", {"answer": "the cat sat on a mat"}).reward
    assert low <= close <= high, close
    assert same == pytest.approx(1.0, abs=0.01) and unrelated == pytest.approx(0.0, abs=0.05)


def test_templates_reach_nested_fields_and_json_samples(graders_client):
    grader = {**EXACT, "input": "{{ sample.output_json.city }}", "reference": "{{ item.answers[1].city }}"}
    answers = {"answers": [{"city": "Rome"}, {"city": "Oslo"}]}
    result = _run(graders_client, grader, json.dumps({"city": "Oslo"}), answers)
    assert result.reward == 1.0
    not_json = _run(graders_client, grader, "Oslo", {"answers": [{}, {"city": "Oslo"}]})
    assert not_json.reward == 0.0 and _raised(not_json.metadata.errors) == ["sample_parse_error"]
    missing = _run(graders_client, EXACT, "Oslo", {"name": "no label here"})
    assert missing.reward == 0.0 and _raised(missing.metadata.errors) == ["invalid_variable_error"]


def test_python_grader(graders_client):
    source = ("def grade(sample, item):\n"
              "    words = sample['output_text'].split()\n"
              "    return 1.0 if len(words) == 1 and words[0] == item['answer'] else 0.25\n")
    grader = {"type": "python", "name": "one word", "source": source}
    assert _run(graders_client, grader, "Paris", {"answer": "Paris"}).reward == 1.0
    assert _run(graders_client, grader, "It is Paris", {"answer": "Paris"}).reward == 0.25
    broken = _run(graders_client, grader, "Paris", {})
    assert broken.reward == 0.0 and _raised(broken.metadata.errors) == ["python_grader_runtime_error"]
    assert "KeyError: 'answer'" in broken.metadata.errors.python_grader_runtime_error_details
    assert 'File "grader.py", line 3' in broken.metadata.errors.python_grader_runtime_error_details


def _listening_socket() -> tuple[socket.socket, list[bytes]]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    heard: list[bytes] = []

    def accept() -> None:
        try:
            connection, _ = listener.accept()
            heard.append(connection.recv(100))
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    return listener, heard


def test_python_grader_limits_are_enforced(graders_client):
    listener, heard = _listening_socket()
    port = listener.getsockname()[1]
    try:
        reaching_out = {"type": "python", "name": "net", "source": (
            "import socket\n"
            "def grade(sample, item):\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')\n"
            "    return 1.0\n")}
        result = _run(graders_client, reaching_out, "x")
        assert result.reward == 0.0
        assert "may not use socket" in result.metadata.errors.python_grader_runtime_error_details
        assert heard == []
    finally:
        listener.close()
    slow = {"type": "python", "name": "slow", "source": "def grade(sample, item):\n    while True:\n        pass\n"}
    result = _run(graders_client, slow, "x")  # this server allows 1 s per sample (OpenAI: 2 minutes)
    assert result.reward == 0.0 and result.metadata.errors.python_grader_server_error
    assert result.metadata.errors.python_grader_server_error_type == "timeout"
    greedy = {"type": "python", "name": "greedy",
              "source": "def grade(sample, item):\n    block = bytearray(3 * 1024 ** 3)\n    return 1.0\n"}
    result = _run(graders_client, greedy, "x")
    assert "MemoryError" in result.metadata.errors.python_grader_runtime_error_details
    spawning = {"type": "python", "name": "spawn",
                "source": "import os\ndef grade(sample, item):\n    os.system('true')\n    return 1.0\n"}
    errors = _run(graders_client, spawning, "x").metadata.errors
    assert "may not use os.system" in errors.python_grader_runtime_error_details


def test_score_model_grader_asks_a_served_model(readme_server):
    client = readme_server.client()
    score = {"type": "score_model", "name": "judge", "model": SMOLLM2, "range": [0, 10],
             "input": [{"role": "system", "content": "You grade answers to 'What is the capital of France?' from 0 "
                                                      "(wrong) to 10 (right)."},
                       {"role": "user", "content": {"type": "input_text", "text": "Answer: {{sample.output_text}}"}}]}
    result = _run(client, score, "Paris")
    assert 0 <= result.reward <= 10 and _raised(result.metadata.errors) == []
    assert result.metadata.sampled_model_name == SMOLLM2 and result.metadata.token_usage > 0
    assert result.api_model_grader_token_usage_per_model[SMOLLM2]["total_tokens"] == result.metadata.token_usage


def test_label_model_grader_picks_a_label(graders_client):
    label = {"type": "label_model", "name": "mood", "model": TINY, "labels": ["good", "bad"],
             "passing_labels": ["good"], "input": [{"role": "user", "content": "Is '{{sample.output_text}}' good?"}]}
    multi = {"type": "multi", "name": "labelled", "graders": label, "calculate_output": "mood"}
    result = _run(graders_client, multi, "Paris")
    assert result.reward in (0.0, 1.0) and set(result.sub_rewards) == {"mood"}
    assert _raised(result.metadata.errors) == []


def test_multi_grader_combines_named_graders(graders_client):
    similar = {"type": "text_similarity", "name": "sim", "input": "{{sample.output_text}}",
               "reference": "{{item.label}}", "evaluation_metric": "fuzzy_match"}
    # The graders guide's shape: an object of named graders, which the formula names (with ^ for powers).
    multi = {"type": "multi", "name": "both", "graders": {"exact": EXACT, "close": similar},
             "calculate_output": "0.5 * exact + 0.5 * close ^ 2"}
    result = graders_client.post("/fine_tuning/alpha/graders/run", cast_to=object, body={
        "grader": multi, "model_sample": "Paris!", "item": {"label": "Paris"}})
    close = result["sub_rewards"]["close"]
    assert result["sub_rewards"]["exact"] == 0.0 and 0.85 < close < 1
    assert result["reward"] == pytest.approx(0.5 * close**2)
    # OpenAI's SDK types `graders` as one grader: that shape passes the strict client.
    single = _run(graders_client, {"type": "multi", "name": "one", "graders": EXACT, "calculate_output": "exact * 2"},
                  "Paris", {"label": "Paris"})
    assert single.reward == 2.0 and single.sub_rewards == {"exact": 1.0}
    broken = _run(graders_client, {"type": "multi", "name": "one", "graders": EXACT, "calculate_output": "exact / 0"},
                  "Paris", {"label": "Paris"})
    assert broken.reward == 0.0 and _raised(broken.metadata.errors) == ["formula_parse_error"]


def test_validate_echoes_a_good_grader(graders_client):
    validated = graders_client.fine_tuning.alpha.graders.validate(grader=EXACT)
    assert validated.grader.model_dump(exclude_none=True) == EXACT
    python = {"type": "python", "name": "p", "source": "def grade(sample, item):\n    return 1.0\n",
              "image_tag": "2025-05-08"}
    assert graders_client.fine_tuning.alpha.graders.validate(grader=python).grader.model_dump() == python


@pytest.mark.parametrize(("grader", "param", "words"), [
    ({**EXACT, "operation": "equals"}, "grader.operation", "operation"),
    ({**EXACT, "reference": "{{items.label}}"}, "grader.reference", "namespace 'items'"),
    ({"type": "python", "name": "p", "source": "def grade(:"}, "grader.source", "does not compile"),
    ({"type": "python", "name": "p", "source": "x = 1"}, "grader.source", "grade(sample, item)"),
    ({"type": "python", "name": "p", "source": "#" * (257 * 1024) + "\ndef grade(s, i):\n    return 1\n"},
     "grader.source", "256 kB"),
    ({"type": "text_similarity", "name": "c", "input": "a", "reference": "b", "evaluation_metric": "cosine"},
     "grader.evaluation_metric", "embedding model"),
    ({"type": "score_model", "name": "s", "model": "gpt-4o", "input": [{"role": "user", "content": "hi"}]},
     "grader.model", "not a model this server serves"),
    ({"type": "score_model", "name": "s", "model": TINY, "range": [1, 0], "input": [{"role": "user", "content": "x"}]},
     "grader.range", "low below high"),
    ({"type": "multi", "name": "m", "graders": {"exact": EXACT}, "calculate_output": "exact + other"},
     "grader.calculate_output", "names other"),
    ({"type": "multi", "name": "m", "graders": {"mood": {
        "type": "label_model", "name": "mood", "model": TINY, "labels": ["a"], "passing_labels": ["b"],
        "input": [{"role": "user", "content": "x"}]}}, "calculate_output": "mood"},
     "grader.graders.mood.passing_labels", "subset"),
    ({"type": "label_model", "name": "mood", "model": TINY, "labels": ["a"], "passing_labels": ["a"],
      "input": [{"role": "user", "content": "x"}]}, "grader.type", "label_model"),
])
def test_validate_refuses_what_cannot_grade(graders_client, grader, param, words):
    error = _refusal(lambda: graders_client.fine_tuning.alpha.graders.validate(grader=grader))
    assert error.param == param and words in error.message, (error.param, error.message)
    error = _refusal(lambda: _run(graders_client, grader, "x"))
    assert error.param == param


def test_run_refuses_a_bad_item_or_body(graders_client):
    error = _refusal(lambda: graders_client.post("/fine_tuning/alpha/graders/run", cast_to=object, body={
        "grader": EXACT, "model_sample": "x", "item": ["not", "an", "object"]}))
    assert error.param == "item"
    error = _refusal(lambda: graders_client.post("/fine_tuning/alpha/graders/run", cast_to=object,
                                                 body={"grader": EXACT}))
    assert "model_sample" in error.message
