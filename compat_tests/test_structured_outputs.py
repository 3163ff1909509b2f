"""Structured outputs through the strict client: `response_format` json_schema (with the SDK's
`parse` and a pydantic model, as OpenAI's guide shows it) and json_object, enforced by constrained
decoding, so that even the tiny random model answers in the schema."""

import json
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, Field

from compat_tests.test_fine_tuning import TINY


class City(BaseModel):
    # Bounded, so that a random model's answers end within max_tokens: a string without maxLength lets it
    # write one string until the budget runs out (then the answer is cut, finish_reason "length", as at OpenAI).
    name: str = Field(max_length=12)
    country: Literal["France", "Spain", "Italy"]
    population_millions: int = Field(ge=0, le=99)
    capital: bool
    tags: list[Literal["old", "big"]] = Field(max_length=3)


def test_every_answer_follows_the_schema(client):
    completion = client.chat.completions.parse(
        model=TINY, messages=[{"role": "user", "content": "Tell me about Paris."}], response_format=City, n=16,
        max_tokens=200, temperature=1, seed=1,
    )
    assert len(completion.choices) == 16
    for choice in completion.choices:
        assert choice.finish_reason == "stop"
        assert isinstance(choice.message.parsed, City)  # the SDK validated it against the pydantic model
        assert City.model_validate_json(choice.message.content) == choice.message.parsed
    assert len({choice.message.content for choice in completion.choices}) > 1  # sampled, not one fixed answer


def test_a_streamed_answer_follows_the_schema_too(client):
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0,
                                                                                  "maximum": 9}},
              "required": ["ok", "n"], "additionalProperties": False}
    stream = client.chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "Well?"}], stream=True, max_tokens=50,
        response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}},
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    answer = json.loads(text)
    assert set(answer) == {"ok", "n"} and isinstance(answer["ok"], bool) and 0 <= answer["n"] <= 9


def test_json_object_answers_are_objects(client):
    completion = client.chat.completions.create(
        model=TINY, messages=[{"role": "user", "content": "Answer in JSON."}], response_format={"type": "json_object"},
        n=8, max_tokens=300, seed=2,
    )
    finished = [choice for choice in completion.choices if choice.finish_reason == "stop"]
    assert finished  # the random model closes some objects and rambles in others' keys until the budget ends
    for choice in finished:
        assert isinstance(json.loads(choice.message.content), dict)


@pytest.mark.parametrize("response_format, messages, param, says", [
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "$dynamicRef": "#a"}}},
     None, "response_format", "$dynamicRef"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(?<=a)b"}}},
     None, "response_format", "look-around"),
    ({"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}, None,
     "response_format.json_schema.name", "name"),
    ({"type": "json_object"}, [{"role": "user", "content": "Hi"}], "messages", "json"),
    ({"type": "yaml"}, None, "response_format.type", "yaml"),
])
def test_what_cannot_be_enforced_is_a_400_naming_it(client, response_format, messages, param, says):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=TINY, messages=messages or [{"role": "user", "content": "JSON?"}],
                                       response_format=response_format)
    assert caught.value.param == param and says in caught.value.message
