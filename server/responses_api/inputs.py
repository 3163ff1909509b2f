"""From a Responses request to the chat generation GXFT runs: input items in the typed shape that is stored and
listed, the same items as chat messages for the model's template, function tools and `tool_choice` in chat's
shape, `text.format` as the schema constrained decoding enforces, and the sampling settings.

A response reads as a chat completion does, so both share one generation path; what differs is spelled here.
"""

from typing import Any

from contract.ids import new_id
from server.completions_protocol import ChatMessage, SamplingRequest
from server.errors import invalid_request
from server.responses_api.protocol import (
    CreateResponseRequest,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputText,
    Item,
    MessageItem,
    OutputText,
)
from server.serving.params import MAX_TOP_LOGPROBS, ResponseFormat, SamplingParams, message_texts, sampling_params

MIN_OUTPUT_TOKENS = 16  # as OpenAI bounds max_output_tokens
LOGPROBS_INCLUDE = "message.output_text.logprobs"
# What each of OpenAI's own tools does, for the 400 that says GXFT has none of them.
BUILT_IN_TOOLS = {
    "web_search": "searches the web", "web_search_preview": "searches the web",
    "file_search": "searches OpenAI vector stores", "computer_use_preview": "drives a computer",
    "computer": "drives a computer", "code_interpreter": "runs code in OpenAI's containers",
    "image_generation": "makes images", "mcp": "calls remote MCP servers from OpenAI's side",
    "local_shell": "runs shell commands", "shell": "runs shell commands", "apply_patch": "edits files",
    "custom": "takes free-form input", "tool_search": "searches tools",
}
_TEXT_PARTS = {"input_text", "output_text", "text"}


def _refuse(name: str, value: Any, why: str) -> None:
    if value:
        raise invalid_request(f"'{name}' is not supported by GXFT's inference server: {why}.", param=name)


def check_unsupported(request: CreateResponseRequest) -> None:
    _refuse("background", request.background, "responses are answered while the request waits, or streamed")
    _refuse("conversation", request.conversation, "chain responses with 'previous_response_id' instead")
    _refuse("prompt", request.prompt, "prompt templates live in OpenAI's dashboard; send 'input' and 'instructions'")
    _refuse("context_management", request.context_management, "GXFT does not compact conversations")
    _refuse("moderation", request.moderation, "GXFT runs no moderation")


def sampling(request: CreateResponseRequest) -> SamplingParams:
    if request.max_output_tokens is not None and request.max_output_tokens < MIN_OUTPUT_TOKENS:
        raise invalid_request(f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= "
                              f"{MIN_OUTPUT_TOKENS}, but got {request.max_output_tokens} instead.",
                              param="max_output_tokens")
    return sampling_params(SamplingRequest(model=request.model, temperature=request.temperature, top_p=request.top_p),
                           request.max_output_tokens)


def top_logprobs(request: CreateResponseRequest) -> int | None:
    """How many alternatives each token lists where the answer's logprobs were asked for (`include`), else None."""
    if request.top_logprobs is not None and not 0 <= request.top_logprobs <= MAX_TOP_LOGPROBS:
        raise invalid_request(f"Invalid 'top_logprobs': {request.top_logprobs}; it must be from 0 to "
                              f"{MAX_TOP_LOGPROBS}.", param="top_logprobs")
    return (request.top_logprobs or 0) if LOGPROBS_INCLUDE in (request.include or ()) else None


def _text(content: Any, param: str) -> str:
    """A message's or a tool output's content as text: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid_request(f"Invalid '{param}': expected a string or a list of content parts.", param=param)
    texts = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise invalid_request(f"Invalid '{param}[{index}]': a {kind!r} part; GXFT serves text models, which "
                                  "read only 'input_text' (and, in the model's own earlier turns, 'output_text') "
                                  "parts.", param=f"{param}[{index}]")
        texts.append(part["text"])
    return "".join(texts)


def _string(item: dict[str, Any], name: str, param: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise invalid_request(f"Missing required parameter: '{param}.{name}'.", param=f"{param}.{name}")
    return value


def _item(item: Any, param: str) -> Item:
    if not isinstance(item, dict):
        raise invalid_request(f"Invalid '{param}': expected an object.", param=param)
    kind = item.get("type", "message")
    if kind == "message":
        role = item.get("role")
        if role not in ("user", "system", "developer", "assistant"):
            raise invalid_request(f"Invalid '{param}.role': {role!r}; expected 'user', 'system', 'developer' or "
                                  "'assistant'.", param=f"{param}.role")
        text = _text(item.get("content"), f"{param}.content")
        part = OutputText(text=text) if role == "assistant" else InputText(text=text)
        return MessageItem(id=item.get("id") or new_id("msg_"), role=role, content=[part])
    if kind == "function_call":
        return FunctionCallItem(id=item.get("id") or new_id("fc_"), call_id=_string(item, "call_id", param),
                                name=_string(item, "name", param), arguments=_string(item, "arguments", param))
    if kind == "function_call_output":
        return FunctionCallOutputItem(id=item.get("id") or new_id("fco_"), call_id=_string(item, "call_id", param),
                                      output=_text(item.get("output"), f"{param}.output"))
    raise invalid_request(
        f"Invalid '{param}.type': GXFT reads input items of type 'message', 'function_call' and "
        f"'function_call_output', not {str(kind)[:60]!r} (an item of OpenAI's own tools, a reasoning item or a "
        "reference to a stored item).", param=f"{param}.type")


def input_items(given: str | list[dict[str, Any]] | None) -> list[Item]:
    """The request's `input` as typed items, each with an id."""
    if given is None:
        return []
    if isinstance(given, str):
        return [MessageItem(id=new_id("msg_"), role="user", content=[InputText(text=given)])]
    return [_item(item, f"input[{index}]") for index, item in enumerate(given)]


def chat_messages(instructions: str | None, items: list[Item]) -> list[ChatMessage]:
    """The conversation as chat messages: the instructions as the system message, then the items, with each run of
    function calls as one assistant message holding them."""
    messages = [ChatMessage(role="system", content=instructions)] if instructions else []
    for item in items:
        if isinstance(item, MessageItem):
            messages.append(ChatMessage(role=item.role, content="".join(part.text for part in item.content)))
        elif isinstance(item, FunctionCallItem):
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments}}
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and last.tool_calls is not None:
                last.tool_calls.append(call)
            else:
                messages.append(ChatMessage(role="assistant", content=None, tool_calls=[call]))
        else:
            messages.append(ChatMessage(role="tool", tool_call_id=item.call_id, content=item.output))
    return messages


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Function tools in chat's shape; OpenAI's own tools are a 400 naming them."""
    chat = []
    for index, tool in enumerate(tools or ()):
        kind = tool.get("type")
        if kind != "function":
            what = next((why for name, why in BUILT_IN_TOOLS.items() if str(kind).startswith(name)), None)
            raise invalid_request(
                f"Invalid 'tools[{index}]': {str(kind)[:60]!r} is one of OpenAI's own tools ({what}), which has no "
                "meaning on GXFT; give function tools, which your code runs." if what else
                f"Invalid 'tools[{index}].type': {str(kind)[:60]!r}; GXFT serves tools of type 'function'.",
                param=f"tools[{index}].type")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid_request(f"Missing required parameter: 'tools[{index}].name'.", param=f"tools[{index}].name")
        # In chat's own order, so that the template renders the tools as a chat request (and training) does.
        function: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        function["parameters"] = tool.get("parameters") or {"type": "object"}
        chat.append({"type": "function", "function": function})
    return chat or None


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if not isinstance(choice, dict):
        return choice
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise invalid_request(f"Invalid 'tool_choice': GXFT chooses among function tools; {choice.get('type')!r} is not "
                          "one ('none', 'auto', 'required' or {'type': 'function', 'name': ...}).", param="tool_choice")


def echoed_format(text: dict[str, Any] | None) -> dict[str, Any]:
    return (text or {}).get("format") or {"type": "text"}


def text_format(text: dict[str, Any] | None, messages: list[ChatMessage]) -> ResponseFormat | None:
    """`text.format` as a schema every answer follows; None for plain text."""
    given = echoed_format(text)
    kind = given.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        if not any("json" in text.lower() for text in message_texts(messages)):
            raise invalid_request("'input' or 'instructions' must contain the word 'json' in some form, to use "
                                  "'text.format' of type 'json_object'.", param="input")
        return ResponseFormat(name="json_object", schema={"type": "object"})
    if kind == "json_schema":
        if not isinstance(given.get("name"), str) or not given["name"]:
            raise invalid_request("Missing required parameter: 'text.format.name'.", param="text.format.name")
        schema = given.get("schema")
        if not isinstance(schema, dict):
            raise invalid_request("Missing required parameter: 'text.format.schema' (a JSON schema object).",
                                  param="text.format.schema")
        return ResponseFormat(name=given["name"], schema=schema)
    raise invalid_request(f"Invalid 'text.format.type': {kind!r}; expected 'text', 'json_object' or 'json_schema'.",
                          param="text.format.type")
