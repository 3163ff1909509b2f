"""Tool calling through the strict client: a model fine-tuned on tool-calling data calls the trained
function with the trained arguments (whole and streamed), reads the tool's result and answers as it
learned; `tool_choice` "required" and a named function make even the untrained base model call in
the tools' schemas; "none" leaves the answer text."""

import json

import openai
import pytest

from compat_tests.test_fine_tuning import TINY
from compat_tests.test_training_methods import TOOLS

ASK = "What is the weather in {}?"
# For the untrained model: a bounded string, or a random model writes one string until max_tokens.
BOUNDED_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                                          "required": ["city"], "additionalProperties": False}}},
                 {"type": "function", "function": {"name": "get_time", "parameters": {
                     "type": "object", "properties": {}, "additionalProperties": False}}}]


def _ask(client, model: str, city: str, **options):
    options.setdefault("temperature", 0)
    options.setdefault("tools", TOOLS)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": ASK.format(city)}],
                                          **options)


def test_the_fine_tuned_model_calls_the_trained_function(client, tool_model):
    for city in ("Paris", "Oslo"):
        choice = _ask(client, tool_model, city).choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        call, = choice.message.tool_calls
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": city}


def test_tool_calls_stream_as_openai_streams_them(client, tool_model):
    stream = _ask(client, tool_model, "Rome", stream=True)
    deltas = [chunk.choices[0] for chunk in stream if chunk.choices]
    calls = [call for delta in deltas for call in delta.delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Rome"}
    assert "".join(delta.delta.content or "" for delta in deltas) == ""  # no <tool_call> markup leaks as text
    assert deltas[-1].finish_reason == "tool_calls"


def test_the_tool_result_goes_back_and_the_model_answers(client, tool_model):
    first = _ask(client, tool_model, "Lima").choices[0].message
    call = first.tool_calls[0]
    answer = client.chat.completions.create(model=tool_model, tools=TOOLS, temperature=0, messages=[
        {"role": "user", "content": ASK.format("Lima")},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"},
    ])
    assert answer.choices[0].message.content == "It is 18 C and sunny in Lima."
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.tool_calls is None


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_calls_follow_the_tools_schema_even_untrained(client, tool_choice):
    """With parallel_tool_calls false, exactly one call, in the schema of one of the tools (the named one)."""
    choices = _ask(client, TINY, "Paris", tools=BOUNDED_TOOLS, tool_choice=tool_choice, parallel_tool_calls=False,
                   n=4, temperature=1, seed=3, max_tokens=300).choices
    names = set()
    for choice in choices:
        assert choice.finish_reason == "tool_calls", choice
        call, = choice.message.tool_calls
        arguments = json.loads(call.function.arguments)
        names.add(call.function.name)
        if call.function.name == "get_weather":
            assert set(arguments) == {"city"} and len(arguments["city"]) <= 12
        else:
            assert call.function.name == "get_time" and arguments == {}
    if tool_choice != "required":
        assert names == {"get_weather"}


def test_tool_choice_none_answers_text(client, tool_model):
    choice = _ask(client, tool_model, "Paris", tool_choice="none").choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason == "stop"
    assert "<tool_call>" in choice.message.content  # what it was trained to write, left as text


@pytest.mark.parametrize("options, param", [
    ({"tool_choice": {"type": "function", "function": {"name": "get_time"}}}, "tool_choice"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [{"type": "web_search"}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}], "tool_choice": "required"},
     "tools"),
])
def test_bad_tool_requests_are_400s(client, options, param):
    arguments = {"model": TINY, "messages": [{"role": "user", "content": "Hi"}], "tools": TOOLS, **options}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**arguments)
    assert caught.value.param == param
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "Hi"}], tool_choice="required")
    assert caught.value.param == "tool_choice"


RESPONSES_TOOLS = [{"type": "function", "name": tool["function"]["name"],
                    "description": tool["function"]["description"], "parameters": tool["function"]["parameters"]}
                   for tool in TOOLS]


def test_through_the_responses_api_the_model_calls_reads_the_output_and_answers(client, tool_model):
    """The agent loop as OpenAI's Responses guide writes it: a function_call item, its output sent back with
    previous_response_id, and the trained answer; streamed, the call comes as its typed events."""
    first = client.responses.create(model=tool_model, input=ASK.format("Oslo"), tools=RESPONSES_TOOLS, temperature=0)
    call, = first.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Oslo"}
    assert call.call_id.startswith("call_") and call.id.startswith("fc_") and first.status == "completed"
    assert first.tools[0].name == "get_weather" and first.tools[0].type == "function"
    answer = client.responses.create(model=tool_model, previous_response_id=first.id, tools=RESPONSES_TOOLS,
                                     temperature=0, input=[{"type": "function_call_output", "call_id": call.call_id,
                                                            "output": "18 C and sunny"}])
    assert answer.output_text == "It is 18 C and sunny in Oslo."

    with client.responses.stream(model=tool_model, input=ASK.format("Rome"), tools=RESPONSES_TOOLS,
                                 temperature=0) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[2:-1] == ["response.output_item.added", "response.function_call_arguments.delta",
                           "response.function_call_arguments.done", "response.output_item.done"]
    streamed, = final.output
    assert streamed.type == "function_call" and json.loads(streamed.arguments) == {"city": "Rome"}
    none = client.responses.create(model=tool_model, input=ASK.format("Paris"), tools=RESPONSES_TOOLS,
                                   tool_choice="none", temperature=0)
    assert [item.type for item in none.output] == ["message"] and "<tool_call>" in none.output_text
    forced = client.responses.create(model=TINY, input=ASK.format("Paris"), tools=[
        {"type": "function", "name": tool["function"]["name"], "parameters": tool["function"]["parameters"]}
        for tool in BOUNDED_TOOLS], tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False, temperature=1, max_output_tokens=300)
    assert [(item.type, item.name) for item in forced.output] == [("function_call", "get_weather")]
    assert set(json.loads(forced.output[0].arguments)) == {"city"}
