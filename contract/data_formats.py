"""Training-data formats: detection and validation of JSONL files, line by line.

One validator serves the server (after each `fine-tune` upload), the worker (as it reads a job's
files), `gxft validate` and `scripts/validate_jsonl.py`, so all report the same line-numbered problems.

Formats, detected from each line's keys:
- `chat`: `{"messages": [...], "tools"?: [...]}` (roles system/user/assistant/tool)
- `preference`: `{"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}`
- `prompt_completion`: `{"prompt": "...", "completion": "..."}`
- `alpaca`: `{"instruction": "...", "input"?: "...", "output": "..."}`
- `text`: `{"text": "..."}`
- `reinforcement`: `{"messages": [...], <any other fields>}`, the messages ending with a user turn: prompts
  for the model to answer, whose other fields are the graders' `{{item.*}}`. A file of `messages` lines
  is read as the one of chat and reinforcement that more of its lines are valid as, and its problems
  are reported as that format's.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from contract.literals import DataFormat, Method

# The formats each method trains on, and how to say so in an error.
METHOD_FORMATS: dict[Method, tuple[DataFormat, ...]] = {
    "supervised": ("chat", "prompt_completion", "text", "alpaca"),
    "dpo": ("preference",),
    "reinforcement": ("reinforcement",),
}
METHOD_FORMATS_TEXT: dict[Method, str] = {
    "supervised": "chat, prompt/completion, text or alpaca files",
    "dpo": 'preference files (each line {"input": {"messages": [...]}, "preferred_output": [...], '
           '"non_preferred_output": [...]})',
    "reinforcement": 'reinforcement files (each line {"messages": [...]} ending with a user turn, with any other '
                     'fields the grader reads as {{item.*}})',
}
ROLES = ("system", "user", "assistant", "tool")
PROMPT_ROLES = (*ROLES, "developer")  # OpenAI's reinforcement data speaks to reasoning models as developer
MAX_REPORTED_PROBLEMS = 5
# One example far larger than any context: refused without reading the whole line into memory.
MAX_LINE_BYTES = 8 * 1024 * 1024


class Invalid(Exception):
    """One problem with one example; the message reads well after `line N: `."""


def too_few_examples(count: int, min_examples: int) -> str | None:
    """The training-file minimum; validation files may be smaller, so this is not a format problem."""
    if count < min_examples:
        return f"the file has {count} example(s), but a training file must have at least {min_examples}"
    return None


class ValidationReport(msgspec.Struct):
    data_format: DataFormat | None
    example_count: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "; ".join(self.problems)

    def too_few_examples(self, min_examples: int) -> str | None:
        return too_few_examples(self.example_count, min_examples)


def detect_format(example: dict[str, Any]) -> DataFormat:
    if "messages" in example:
        return "chat"
    if "preferred_output" in example or "non_preferred_output" in example:
        return "preference"
    if "prompt" in example or "completion" in example:
        return "prompt_completion"
    if "instruction" in example:
        return "alpaca"
    if "text" in example:
        return "text"
    raise Invalid(
        "unrecognised example: expected chat (\"messages\"), preference (\"input\", \"preferred_output\", "
        "\"non_preferred_output\"), prompt/completion (\"prompt\", \"completion\"), alpaca (\"instruction\", "
        "\"output\") or text (\"text\") keys"
    )


def _require_string(value: Any, where: str, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise Invalid(f"{where} must be a string")
    if not allow_empty and not value.strip():
        raise Invalid(f"{where} is empty")


def _check_content(content: Any, where: str) -> None:
    if isinstance(content, str):
        return
    if isinstance(content, list):
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise Invalid(f'{where}[{index}] must be {{"type": "text", "text": "..."}}')
        return
    raise Invalid(f"{where} must be a string or a list of text parts")


def _check_tool_calls(tool_calls: Any, where: str) -> None:
    if not isinstance(tool_calls, list) or not tool_calls:
        raise Invalid(f"{where} must be a non-empty list")
    for index, call in enumerate(tool_calls):
        at = f"{where}[{index}]"
        if not isinstance(call, dict):
            raise Invalid(f"{at} must be an object")
        function = call.get("function")
        if not isinstance(function, dict):
            raise Invalid(f'{at} has no "function" object')
        _require_string(function.get("name"), f"{at}.function.name")
        if not isinstance(function.get("arguments"), str):
            raise Invalid(f"{at}.function.arguments must be a JSON string")


def _check_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        raise Invalid('"tools" must be a list')
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise Invalid(f'tools[{index}] must be {{"type": "function", "function": {{...}}}}')
        function = tool.get("function")
        if not isinstance(function, dict):
            raise Invalid(f'tools[{index}] has no "function" object')
        _require_string(function.get("name"), f"tools[{index}].function.name")


def check_messages(messages: Any, where: str = "messages", need_assistant: bool = True,
                   roles_allowed: tuple[str, ...] = ROLES) -> None:
    if not isinstance(messages, list):
        raise Invalid(f'"{where}" must be a list')
    if not messages:
        raise Invalid(f'"{where}" is empty')
    roles = set()
    for index, message in enumerate(messages):
        at = f"{where}[{index}]"
        if not isinstance(message, dict):
            raise Invalid(f"{at} must be an object")
        if "role" not in message:
            raise Invalid(f'{at} has no "role"')
        role = message["role"]
        if role not in roles_allowed:
            raise Invalid(f"{at} has unknown role {role!r} (expected one of {', '.join(roles_allowed)})")
        roles.add(role)
        has_tool_calls = role == "assistant" and message.get("tool_calls") is not None
        if has_tool_calls:
            _check_tool_calls(message["tool_calls"], f"{at}.tool_calls")
        if "content" not in message or message["content"] is None:
            if not has_tool_calls:
                raise Invalid(f'{at} has no "content"')
        else:
            _check_content(message["content"], f"{at}.content")
        if "weight" in message:
            if role != "assistant":
                raise Invalid(f'{at} has a "weight" but only assistant messages can carry one')
            if message["weight"] not in (0, 1) or isinstance(message["weight"], bool):
                raise Invalid(f"{at}.weight must be 0 or 1")
    if "user" not in roles:
        raise Invalid(f'"{where}" has no user message')
    if need_assistant and "assistant" not in roles:
        raise Invalid(f'"{where}" has no assistant message')


def _check_single_assistant(output: Any, key: str) -> None:
    if not isinstance(output, list) or len(output) != 1:
        raise Invalid(f'"{key}" must be a list holding exactly one assistant message')
    message = output[0]
    if not isinstance(message, dict) or message.get("role") != "assistant":
        raise Invalid(f'{key}[0] must be an assistant message')
    _check_content(message.get("content"), f"{key}[0].content")


def _check_prompt(example: dict[str, Any]) -> None:
    messages = example["messages"]
    check_messages(messages, need_assistant=False, roles_allowed=PROMPT_ROLES)
    if messages[-1].get("role") != "user":
        raise Invalid(f'"messages" must end with a user turn, for the model to answer (the last message\'s role '
                      f'is {messages[-1].get("role")!r})')
    if any("weight" in message for message in messages):
        raise Invalid('a reinforcement prompt\'s messages carry no "weight": the model\'s own answers are trained')


def check_example(example: dict[str, Any], data_format: DataFormat) -> None:
    if data_format == "chat":
        check_messages(example["messages"])
        if "tools" in example:
            _check_tools(example["tools"])
    elif data_format == "reinforcement":
        _check_prompt(example)
        if "tools" in example:
            _check_tools(example["tools"])
    elif data_format == "preference":
        prompt = example.get("input")
        if not isinstance(prompt, dict):
            raise Invalid('"input" must be an object with "messages"')
        check_messages(prompt.get("messages"), "input.messages", need_assistant=False)
        _check_single_assistant(example.get("preferred_output"), "preferred_output")
        _check_single_assistant(example.get("non_preferred_output"), "non_preferred_output")
    elif data_format == "prompt_completion":
        _require_string(example.get("prompt"), '"prompt"', allow_empty=True)
        _require_string(example.get("completion"), '"completion"')
    elif data_format == "alpaca":
        _require_string(example.get("instruction"), '"instruction"')
        _require_string(example.get("output"), '"output"')
        if example.get("input") is not None:
            _require_string(example["input"], '"input"', allow_empty=True)
    elif data_format == "text":
        _require_string(example.get("text"), '"text"')


_FORMAT_NAMES: dict[DataFormat, str] = {
    "chat": "chat",
    "preference": "preference",
    "prompt_completion": "prompt/completion",
    "alpaca": "alpaca",
    "text": "text",
    "reinforcement": "reinforcement",
}


def _bounded_lines(stream: BinaryIO) -> Iterator[bytes | None]:
    """The stream's lines; None for a line over MAX_LINE_BYTES, which is skipped in 1 MiB reads."""
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while (rest := stream.readline(1 << 20)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def iter_examples(stream: BinaryIO) -> Iterator[tuple[int, dict[str, Any] | Invalid]]:
    """Yield `(line_number, example or the problem with that line)` for each non-blank line."""
    decoder = msgspec.json.Decoder()
    for line_number, raw in enumerate(_bounded_lines(stream), start=1):
        if raw is None:
            yield line_number, Invalid(f"the line is longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
            continue
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield line_number, Invalid(f"not valid UTF-8 (byte {exc.start})")
            continue
        try:
            example = decoder.decode(text)
        except msgspec.DecodeError as exc:
            yield line_number, Invalid(f"not valid JSON ({exc})")
            continue
        except RecursionError:
            yield line_number, Invalid("the JSON is nested too deeply")
            continue
        if not isinstance(example, dict):
            yield line_number, Invalid("expected a JSON object")
            continue
        yield line_number, example


class _Reading(msgspec.Struct):
    """One candidate format's account of the file so far."""

    data_format: DataFormat
    count: int = 0
    problems: list[str] = []

    def check(self, line_number: int, item: dict[str, Any]) -> None:
        try:
            check_example(item, self.data_format)
            self.count += 1
        except Invalid as problem:
            self.problems.append(f"line {line_number}: {problem}")


def validate_stream(stream: BinaryIO) -> ValidationReport:
    data_format: DataFormat | None = None
    first_format_line = 0
    # A `messages` line is a chat example or a reinforcement prompt: both readings are kept to the end.
    readings: list[_Reading] = []
    problems: list[str] = []  # found whatever the format (JSON, or a line of another format)

    def reported() -> int:
        return len(problems) + min((len(reading.problems) for reading in readings), default=0)

    for line_number, item in iter_examples(stream):
        try:
            if isinstance(item, Invalid):
                raise item
            line_format = detect_format(item)
            if data_format is None:
                data_format, first_format_line = line_format, line_number
                readings = [_Reading("chat"), _Reading("reinforcement")] if line_format == "chat" else [
                    _Reading(line_format)]
            elif line_format != data_format:
                raise Invalid(
                    f"example is in the {_FORMAT_NAMES[line_format]} format, but the file is in the "
                    f"{_FORMAT_NAMES[data_format]} format (line {first_format_line}); all lines must share one format"
                )
            for reading in readings:
                reading.check(line_number, item)
        except Invalid as problem:
            problems.append(f"line {line_number}: {problem}")
        if reported() >= MAX_REPORTED_PROBLEMS:
            break
    # The reading more lines are valid as; on a tie (every line valid as both), a chat example.
    best = max(readings, key=lambda reading: (reading.count, reading.data_format == "chat"), default=None)
    if best is not None:
        data_format = best.data_format
        problems = sorted(problems + best.problems, key=lambda text: int(text.split(":")[0].split()[1]))
    problems = problems[:MAX_REPORTED_PROBLEMS]
    count = best.count if best is not None else 0
    if not problems and count == 0:
        problems.append("the file is empty: it holds no examples")
    return ValidationReport(data_format=data_format, example_count=count, problems=problems)


def validate_file(path: Path) -> ValidationReport:
    with open(path, "rb") as stream:
        return validate_stream(stream)
