"""Tool calling: OpenAI's `tools` and `tool_choice` as the chat template and the decoder read them,
and the model's output parsed back into `tool_calls`.

The parser reads the Hermes format, `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, which
Qwen2.5 and Qwen3, the Hermes models and gxft/tiny-chat's template write, and which training renders
for tool-calling examples through the same template. Other formats (Llama 3's bare JSON, Mistral's
`[TOOL_CALLS]`) are not parsed: their calls stay in the answer's text. `tool_choice` "required" or a
named function is enforced by constrained decoding: a grammar of one call or more (one with
`parallel_tool_calls: false`) whose JSON is each tool's own parameter schema, written with the
separators json.dumps and the template use, so that a fine-tuned model meets the tokens it learned.
"""

import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from server.errors import invalid_request

OPEN, CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ToolUse:
    tools: list[dict[str, Any]]  # as OpenAI's request gives them: {"type": "function", "function": {...}}
    choice: Literal["none", "auto", "required"] | str  # or the one function's name that must be called
    parallel: bool

    @property
    def names(self) -> list[str]:
        return [tool["function"]["name"] for tool in self.tools]

    def grammar(self) -> str | None:
        """The lark grammar of the calls `tool_choice` forces; None where the model chooses."""
        if self.choice in ("none", "auto"):
            return None
        forced = [tool for tool in self.tools if self.choice == "required" or tool["function"]["name"] == self.choice]
        schema = {
            "anyOf": [{
                "type": "object",
                "properties": {"name": {"const": tool["function"]["name"]},
                               "arguments": tool["function"].get("parameters") or {"type": "object"}},
                "required": ["name", "arguments"], "additionalProperties": False,
            } for tool in forced],
            "x-guidance": {"whitespace_flexible": False, "key_separator": ": ", "item_separator": ", "},
        }
        return (f"start: call{'+' if self.parallel else ''}\n"
                f"call: {json.dumps(OPEN)} body {json.dumps(CLOSE)}\n"
                f"body: %json {json.dumps(schema)}")


def tool_use(tools: list[dict[str, Any]] | None, choice: Any, parallel: bool | None) -> ToolUse | None:
    """The request's tools, checked as OpenAI checks them."""
    if not tools:
        if choice not in (None, "none"):
            raise invalid_request("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                                  "specified.", param="tool_choice")
        return None
    for index, tool in enumerate(tools):
        function = tool.get("function") if tool.get("type") == "function" else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise invalid_request(f"Invalid 'tools[{index}]': GXFT serves tools of type 'function' with a "
                                  f"'function.name' (this one has type {tool.get('type')!r}).", param=f"tools[{index}]")
    names = [tool["function"]["name"] for tool in tools]
    if choice is None:
        choice = "auto"
    elif isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        if name not in names:
            raise invalid_request(f"Invalid 'tool_choice': no function named {name!r} among the tools ({names}).",
                                  param="tool_choice")
        choice = name
    elif choice not in ("none", "auto", "required"):
        raise invalid_request(f"Invalid 'tool_choice': {choice!r}; expected 'none', 'auto', 'required' or "
                              "{'type': 'function', 'function': {'name': ...}}.", param="tool_choice")
    return ToolUse(tools=tools, choice=choice, parallel=parallel is not False)


@dataclass(frozen=True)
class ParsedCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI answers it


def _parsed(block: str) -> ParsedCall | None:
    try:
        call = json.loads(block)
    except json.JSONDecodeError:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    arguments = call.get("arguments", {})
    return ParsedCall(id="call_" + secrets.token_hex(12), name=call["name"],
                      arguments=arguments if isinstance(arguments, str) else json.dumps(arguments))


class ToolCallParser:
    """An answer's text as it streams, split into its content and its tool calls. Text that may be the
    start of a call is held back until it is one or cannot be; a block that does not parse as a call is
    given back as text."""

    def __init__(self, parallel: bool):
        self.parallel = parallel
        self.calls: list[ParsedCall] = []
        self.content = ""  # all the content given out so far
        self._held = ""

    def feed(self, text: str) -> tuple[str, list[ParsedCall]]:
        """Take more of the answer; answer the content that is now safe to send, and the calls now complete."""
        self._held += text
        content, calls = "", []
        while True:
            start = self._held.find(OPEN)
            if start == -1:
                keep = _partial_suffix(self._held, OPEN)
                content += self._held[:len(self._held) - keep]
                self._held = self._held[len(self._held) - keep:]
                break
            content += self._held[:start]
            end = self._held.find(CLOSE, start)
            if end == -1:
                self._held = self._held[start:]
                break
            call = _parsed(self._held[start + len(OPEN):end])
            if call is None:
                content += self._held[start:end + len(CLOSE)]
            elif self.parallel or not self.calls:
                calls.append(call)
                self.calls.append(call)
            self._held = self._held[end + len(CLOSE):]
        self.content += content
        return content, calls

    def finish(self) -> str:
        """What is still held back, once the answer has ended: an unfinished call is text."""
        rest, self._held = self._held, ""
        self.content += rest
        return rest


def _partial_suffix(text: str, marker: str) -> int:
    """How many characters at the end of `text` could begin `marker`."""
    for size in range(min(len(marker) - 1, len(text)), 0, -1):
        if text.endswith(marker[:size]):
            return size
    return 0
