"""Stored completions through the strict client: `store: true` keeps a chat completion (whole or streamed) with its
metadata; it is listed (by model and metadata, in both orders, page by page), retrieved, its request messages read,
its metadata updated, and deleted, each project seeing only its own. And the distillation loop: a fine-tuned
teacher's stored answers become a training file (`gxft files from-completions`) on which a student learns them."""

import httpx2
import openai
import pytest

from compat_tests.server_process import ServerProcess
from compat_tests.test_cli import gxft, ok
from compat_tests.test_fine_tuning import TINY, wait_done
from compat_tests.test_serving import QA, RECIPE, ask


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("stored") / "data", worker=False,
                            env={"GXFT_API_KEYS": "key-a=alpha,key-b=beta"})
    yield process
    process.stop()


def _store(client, text: str, metadata: dict[str, str] | None, **options):
    return client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": text}], max_tokens=4,
                                          store=True, metadata=metadata, **options)


def test_stored_completions_are_listed_retrieved_updated_and_deleted(keyed):
    client = keyed.client("key-a")
    first = _store(client, "one", {"topic": "capitals", "run": "1"})
    second = _store(client, "two", {"topic": "capitals", "run": "2"}, temperature=0)
    client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "not kept"}], max_tokens=2,
                                   metadata={"topic": "capitals"})  # without store: true, nothing is kept
    chunks = list(client.chat.completions.create(model=TINY, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "three"}]}],
        max_tokens=4, store=True, metadata={"topic": "other"}, stream=True))
    streamed, streamed_text = chunks[0], "".join(chunk.choices[0].delta.content or "" for chunk in chunks)

    listed = client.chat.completions.list()
    assert [c.id for c in listed.data] == [first.id, second.id, streamed.id] and not listed.has_more  # oldest first
    assert [c.id for c in client.chat.completions.list(order="desc").data] == [streamed.id, second.id, first.id]
    assert [c.id for c in client.chat.completions.list(metadata={"topic": "capitals"})] == [first.id, second.id]
    assert [c.id for c in client.chat.completions.list(metadata={"topic": "capitals", "run": "2"})] == [second.id]
    assert [c.id for c in client.chat.completions.list(model="gxft/other")] == []
    page = client.chat.completions.list(limit=2)
    assert [c.id for c in page.data] == [first.id, second.id] and page.has_more
    assert [c.id for c in page.get_next_page().data] == [streamed.id]

    kept = client.chat.completions.retrieve(second.id)
    assert kept.metadata == {"topic": "capitals", "run": "2"}
    assert kept.choices[0].message.content == second.choices[0].message.content and kept.usage == second.usage
    assert client.chat.completions.retrieve(streamed.id).choices[0].message.content == streamed_text

    # OpenAI answers each request message with its own role, as its document's example shows; the SDK types every
    # one as the assistant's, so the strict client refuses "system" and "user". A plain client reads them.
    with pytest.raises(openai.APIResponseValidationError):
        client.chat.completions.messages.list(streamed.id)
    plain = openai.OpenAI(base_url=keyed.base_url + "/v1", api_key="key-a", max_retries=0)
    messages = plain.chat.completions.messages.list(streamed.id)
    assert [(m.id, m.role, m.content) for m in messages.data] == [
        (f"{streamed.id}-0", "system", "Be brief."), (f"{streamed.id}-1", "user", "three")]
    assert messages.data[1].content_parts[0].text == "three" and messages.data[0].content_parts is None
    assert [m.id for m in plain.chat.completions.messages.list(streamed.id, order="desc", limit=1)] == \
        [f"{streamed.id}-1", f"{streamed.id}-0"]  # the SDK pages on to the end

    updated = client.chat.completions.update(first.id, metadata={"topic": "rivers"})
    assert updated.metadata == {"topic": "rivers"}
    assert [c.id for c in client.chat.completions.list(metadata={"topic": "rivers"})] == [first.id]

    deleted = client.chat.completions.delete(first.id)
    assert deleted.id == first.id and deleted.deleted and deleted.object == "chat.completion.deleted"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(first.id)
    assert [c.id for c in client.chat.completions.list()] == [second.id, streamed.id]

    other = keyed.client("key-b")  # another project sees none of them
    assert list(other.chat.completions.list()) == []
    for call in (other.chat.completions.retrieve, other.chat.completions.delete):
        with pytest.raises(openai.NotFoundError):
            call(second.id)
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.update(second.id, metadata={})


def test_stored_completion_mistakes_are_clear_400s_and_404s(keyed):
    client = keyed.client("key-a")
    with pytest.raises(openai.BadRequestError, match="at most 16 keys"):
        _store(client, "x", {f"k{i}": "v" for i in range(17)})
    with pytest.raises(openai.BadRequestError, match="longer than 512"):
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "x"}], max_tokens=1,
                                       metadata={"k": "v" * 513})
    for query, param in (({"order": "sideways"}, "order"), ({"limit": 0}, "limit"),
                         ({"after": "chatcmpl-no"}, "after")):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.list(**query)
        assert refused.value.param == param
    with pytest.raises(openai.NotFoundError, match="chatcmpl-missing"):
        client.chat.completions.messages.list("chatcmpl-missing")
    kept = _store(client, "x", None)
    answer = httpx2.post(f"{keyed.base_url}/v1/chat/completions/{kept.id}", json={"metadata": {}, "model": TINY},
                         headers={"authorization": "Bearer key-a"})
    assert answer.status_code == 400 and "unknown field `model`" in answer.json()["error"]["message"]
    assert httpx2.post(f"{keyed.base_url}/v1/chat/completions/{kept.id}", json={},
                       headers={"authorization": "Bearer key-a"}).status_code == 400
    assert "Traceback" not in keyed.log()


def test_distillation_loop_stored_answers_teach_a_student(server, qa_model, tmp_path):
    """The teacher answers with `store: true`; `gxft files from-completions` turns the answers tagged for this run
    into a training file, uploads it and waits for it to validate; a student trained on it answers as the teacher."""
    client = server.client()
    for question in QA:
        for _ in range(5):  # ten examples: the fewest a training file may hold
            ask(client, qa_model, question, store=True, metadata={"distil": "qa-run"})
        assert ask(client, qa_model, question).choices[0].message.content == QA[question]
    ask(client, TINY, "an untagged question", store=True, max_tokens=2, metadata={"distil": "other"})
    before = {question: ask(client, TINY, question, max_tokens=16).choices[0].message.content for question in QA}
    assert all(before[question] != QA[question] for question in QA)

    written = tmp_path / "distilled.jsonl"
    assert "10 examples" in ok(gxft(server, "files", "from-completions", "--metadata", "distil=qa-run",
                                    "--model", qa_model, "-o", str(written)))
    assert len(written.read_text().splitlines()) == 10
    uploaded = ok(gxft(server, "files", "from-completions", "--metadata", "distil=qa-run"))
    file_id = uploaded.split()[0]
    assert file_id.startswith("file-") and "processed" in uploaded
    none = gxft(server, "files", "from-completions", "--metadata", "distil=nothing")
    assert none.returncode == 1 and "no stored completion matches" in none.stderr

    student = wait_done(client, client.fine_tuning.jobs.create(
        model=TINY, training_file=file_id, seed=1, suffix="student", hyperparameters={**RECIPE, "lora": True}).id,
        patience=180)
    assert student.status == "succeeded", student.error
    for question, answer in QA.items():
        assert ask(client, student.fine_tuned_model, question).choices[0].message.content == answer
