"""Serving under load, through the strict client: continuous batching (a short request is answered while
a long generation runs), a fair share between projects, the caps on one request, and a generation that
stops when its client goes away. What they cost and gain is measured by scripts/bench/serving.py; these
tests check the order things happen in, never a time."""

import re
import threading
import time

import httpx2
import openai
import pytest

from compat_tests.server_process import ServerProcess
from compat_tests.test_fine_tuning import TINY

NO_END = {"2": -100}  # tiny-chat's end-of-turn token, banned: an answer as long as it is allowed to be


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("load") / "data", worker=False, log_level="info",
                            env={"GXFT_API_KEYS": "sk-bulk=bulk,sk-chat=chat", "GXFT_MAX_RUNNING_ROWS": "8",
                                 "GXFT_MAX_REQUEST_ROWS": "600"})
    yield process
    process.stop()


def _chat(client, content: str = "Hi", **options):
    return client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": content}],
                                          temperature=0, **options)


def test_a_short_request_is_answered_while_a_long_generation_runs(server):
    client = server.client("sk-chat")
    stream = _chat(client, "Go on", max_tokens=600, logit_bias=NO_END, stream=True)
    chunks = iter(stream)
    next(chunks)
    alone = _chat(server.client("sk-chat"), "Hello", max_tokens=4)
    assert alone.usage.completion_tokens == 4
    rest = list(chunks)  # the long one was still running when the short one was answered
    assert len(rest) > 50 and rest[-1].choices[0].finish_reason == "length"


def _in_background(call):
    """Run `call` on a thread; answer the thread and where its result will be."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("answer", call()))
    thread.start()
    return thread, result


def test_another_projects_request_is_not_starved_by_a_bulk_request(server):
    """The bulk project sends 512 rows for 8 places; the chat project's row is still answered long before
    bulk's end, and bulk's rows all come out the same (greedy) however they were scheduled."""
    thread, bulk = _in_background(lambda: server.client("sk-bulk").completions.create(
        model=TINY, prompt=["Once upon a time"] * 4, n=128, max_tokens=16, logit_bias=NO_END, temperature=0))
    _wait_for_log(server, "queued 512 rows", lambda text: "project bulk" in text)
    assert _chat(server.client("sk-chat"), "Hello", max_tokens=4).usage.completion_tokens == 4
    assert thread.is_alive()
    thread.join()
    choices = bulk["answer"].choices
    assert len(choices) == 512 and all(choice.finish_reason == "length" for choice in choices)
    assert len({choice.text for choice in choices}) == 1


def test_a_project_holding_every_place_gives_one_up(server):
    """Bulk's 8 long rows hold all 8 places; the chat project's row preempts one of them rather than wait for
    their end, and the preempted row resumes where it was: its text is the same as the others'."""
    thread, bulk = _in_background(lambda: server.client("sk-bulk").completions.create(
        model=TINY, prompt="Once upon a time", n=8, max_tokens=400, logit_bias=NO_END, temperature=0))
    _wait_for_log(server, "queued 8 rows", lambda text: "project bulk" in text)
    assert _chat(server.client("sk-chat"), "Hello", max_tokens=4).usage.completion_tokens == 4
    assert thread.is_alive()
    _wait_for_log(server, "preempted a row of project bulk", lambda text: True)
    thread.join()
    choices = bulk["answer"].choices
    assert all(choice.finish_reason == "length" for choice in choices)
    assert len({choice.text for choice in choices}) == 1


def test_a_non_streamed_generation_stops_when_its_client_goes_away(server):
    impatient = server.client("sk-chat").with_options(timeout=1.5, max_retries=0)
    with pytest.raises(openai.APITimeoutError):
        _chat(impatient, "Tell me everything", max_tokens=None, logit_bias=NO_END)
    line = _wait_for_log(server, "its client went away", lambda text: "choice 0" in text)
    generated, budget = map(int, re.search(r"after (\d+) of at most (\d+) tokens", line).groups())
    assert generated < budget  # it stopped, rather than running to the end of the context


@pytest.mark.parametrize("call, param, cap", [
    (lambda c: c.completions.create(model=TINY, prompt=["a"] * 5, n=128), "prompt", "600"),
    (lambda c: c.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "a"}], n=129), "n",
     "128"),
    (lambda c: c.completions.create(model=TINY, prompt=["a"] * 600, max_tokens=None), "max_tokens",
     "1,048,576"),
])
def test_caps_on_one_request_are_400s_naming_the_cap(server, call, param, cap):
    with pytest.raises(openai.BadRequestError) as caught:
        call(server.client("sk-chat"))
    assert caught.value.param == param and cap in caught.value.message


def test_the_server_is_healthy_after_all_that(server):
    assert httpx2.get(server.base_url + "/healthz").status_code == 200
    assert _chat(server.client("sk-bulk"), max_tokens=2).usage.completion_tokens == 2


def _wait_for_log(server: ServerProcess, marker: str, accept, patience: float = 60) -> str:
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        for line in server.log().splitlines():
            if marker in line and accept(line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no {marker!r} in the server's log:\n{server.log()[-3000:]}")
