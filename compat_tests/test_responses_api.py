"""The Responses API through the strict client: a fine-tuned model answers what it learned, whole and streamed
(typed events in OpenAI's order, numbered); `previous_response_id` continues a stored response exactly as the
whole conversation sent again; `text.format` and logprobs; stored responses given back, listed item by item and
deleted, per project; and each thing GXFT cannot do is a 400 naming it."""

import json
from typing import Annotated

import httpx2
import openai
import pytest
from pydantic import BaseModel, Field

from compat_tests.server_process import ServerProcess
from compat_tests.test_fine_tuning import TINY
from compat_tests.test_serving import QA

QUESTION, ANSWER = next(iter(QA.items()))


@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("responses") / "data", worker=False,
                            env={"GXFT_API_KEYS": "key-a=alpha,key-b=beta"})
    yield process
    process.stop()


def test_a_fine_tuned_model_answers_what_it_learned(client, qa_model):
    response = client.responses.create(model=qa_model, input=QUESTION, temperature=0)
    assert response.object == "response" and response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == ANSWER and response.model == qa_model
    message, = response.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_") and message.content[0].type == "output_text"
    chat = client.chat.completions.create(model=qa_model, messages=[{"role": "user", "content": QUESTION}],
                                          temperature=0)
    assert response.usage.input_tokens == chat.usage.prompt_tokens  # the same prompt, rendered the same way
    assert response.usage.output_tokens == chat.usage.completion_tokens
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.store and response.tool_choice == "auto" and response.tools == [] and response.metadata == {}
    # The same, as a list of messages with instructions that change the prompt, not the model's training.
    listed = client.responses.create(model=qa_model, input=[{"role": "user", "content": QUESTION}], temperature=0)
    assert listed.output_text == ANSWER


def test_a_streamed_response_sends_openai_typed_events_in_order(client, qa_model):
    with client.responses.stream(model=qa_model, input=QUESTION, temperature=0) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == ANSWER and final.status == "completed"
    types = [event.type for event in events]
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * len(deltas),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert len(deltas) > 1 and "".join(event.delta for event in deltas) == ANSWER
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert events[0].response.status == "in_progress" and events[0].response.output == []
    assert client.responses.retrieve(final.id).output_text == ANSWER  # stored once it ended


def test_previous_response_id_continues_as_the_whole_conversation_would(client, qa_model):
    first = client.responses.create(model=qa_model, input=QUESTION, temperature=0, instructions="Answer briefly.")
    follow = "And who wrote Hamlet?"
    chained = client.responses.create(model=qa_model, previous_response_id=first.id, input=follow, temperature=0,
                                      max_output_tokens=24)
    whole = client.responses.create(model=qa_model, temperature=0, max_output_tokens=24, input=[
        {"role": "user", "content": QUESTION}, {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": follow}])
    assert chained.previous_response_id == first.id
    # The instructions are not carried over, as at OpenAI: both read the same three messages.
    assert chained.usage.input_tokens == whole.usage.input_tokens > first.usage.input_tokens
    assert chained.output_text == whole.output_text
    items = client.responses.input_items.list(chained.id, order="asc")
    assert [(item.type, item.role) for item in items] == [("message", "user"), ("message", "assistant"),
                                                          ("message", "user")]
    assert items.data[1].id == first.output[0].id and items.data[2].content[0].text == follow
    assert [item.id for item in client.responses.input_items.list(chained.id)] == \
        [item.id for item in reversed(items.data)]  # newest first by default
    client.responses.delete(first.id)  # the chain keeps what it read
    assert client.responses.create(model=qa_model, previous_response_id=chained.id, input="Thanks",
                                   max_output_tokens=16).status in ("completed", "incomplete")


class City(BaseModel):
    name: Annotated[str, Field(max_length=12)]  # bounded: an untrained model would write one string to the end
    population: int


def test_text_format_json_schema_makes_every_answer_parse(client):
    for seed_text in ("one", "two", "three", "four"):
        parsed = client.responses.parse(model=TINY, input=f"A city as JSON ({seed_text})", text_format=City,
                                        temperature=1, max_output_tokens=200)
        assert parsed.status == "completed" and isinstance(parsed.output_parsed, City)
        assert parsed.text.format.type == "json_schema" and parsed.text.format.strict
    answer = client.responses.create(model=TINY, input="Reply in json", max_output_tokens=200, temperature=1,
                                     text={"format": {"type": "json_object"}})
    if answer.status == "completed":
        assert isinstance(json.loads(answer.output_text), dict)
    with pytest.raises(openai.BadRequestError, match="json") as refused:
        client.responses.create(model=TINY, input="no such word", text={"format": {"type": "json_object"}})
    assert refused.value.param == "input"


def test_logprobs_are_the_chat_endpoint_s(client, qa_model):
    response = client.responses.create(model=qa_model, input=QUESTION, temperature=0, top_logprobs=2,
                                       include=["message.output_text.logprobs"])
    chat = client.chat.completions.create(model=qa_model, messages=[{"role": "user", "content": QUESTION}],
                                          temperature=0, logprobs=True, top_logprobs=2)
    theirs = response.output[0].content[0].logprobs
    ours = chat.choices[0].logprobs.content
    assert [entry.token for entry in theirs] == [entry.token for entry in ours]
    assert [entry.logprob for entry in theirs] == pytest.approx([entry.logprob for entry in ours], abs=1e-4)
    assert all(len(entry.top_logprobs) == 2 for entry in theirs)
    assert client.responses.create(model=qa_model, input=QUESTION, temperature=0).output[0].content[0].logprobs == []


def test_stored_responses_belong_to_their_project_and_store_false_keeps_none(keyed):
    client, other = keyed.client("key-a"), keyed.client("key-b")
    kept = client.responses.create(model=TINY, input="hello", max_output_tokens=16, metadata={"run": "1"})
    assert client.responses.retrieve(kept.id).metadata == {"run": "1"}
    unkept = client.responses.create(model=TINY, input="hello", max_output_tokens=16, store=False)
    assert unkept.status == "incomplete" and unkept.incomplete_details.reason == "max_output_tokens"
    assert unkept.output[0].status == "incomplete" and unkept.usage.output_tokens == 16
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unkept.id)
    with pytest.raises(openai.NotFoundError, match="Previous response"):
        client.responses.create(model=TINY, input="more", previous_response_id=unkept.id)
    for call in (other.responses.retrieve, other.responses.delete, other.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            call(kept.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model=TINY, input="more", previous_response_id=kept.id)
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.cancel(kept.id)
    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)


@pytest.mark.parametrize("options, param", [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type"),
    ({"tools": [{"type": "computer_use_preview", "display_width": 1, "display_height": 1,
                 "environment": "linux"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input[0].content[0]"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input[0].type"),
    ({"input": []}, "input"),
    ({"max_output_tokens": 8}, "max_output_tokens"),
    ({"background": True}, "background"),
    ({"temperature": 3}, "temperature"),
    ({"text": {"format": {"type": "json_schema", "schema": {"type": "object"}}}}, "text.format.name"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
])
def test_what_gxft_cannot_do_is_a_400_naming_it(client, options, param):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(**{"model": TINY, "input": "Hi", **options})
    assert refused.value.param == param


def test_responses_mistakes_on_the_wire_are_clear(server):
    logged_before = len(server.log())  # the shared server's log also holds other tests' failing jobs
    url, key = server.base_url + "/v1/responses", {"authorization": "Bearer sk-test"}
    unknown = httpx2.post(url, json={"model": TINY, "input": "Hi", "temprature": 1}, headers=key)
    assert unknown.status_code == 400 and "temprature" in unknown.json()["error"]["message"]
    stream = httpx2.get(url + "/resp_missing", params={"stream": "true"}, headers=key)
    assert stream.status_code == 400 and stream.json()["error"]["param"] == "stream"
    assert httpx2.get(url + "/resp_missing", headers=key).status_code == 404
    assert "Traceback" not in server.log()[logged_before:]
