"""Template strings: `{{ item.answer }}`, `{{ sample.output_text }}`, `{{ sample.output_json.score }}`.

As in OpenAI's graders, a template names a namespace (`item` or `sample`) and a path into it of keys
and list indices (`item.steps[0].text`). A string value is put in as it is; any other value as JSON.
"""

import re
from typing import Any

import msgspec

from grading.errors import GradingFailure

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
NAMESPACES = ("item", "sample")


class Sample(msgspec.Struct, kw_only=True):
    """What a model answered, as graders see it."""

    output_text: str
    output_tools: list[Any] = []

    @property
    def output_json(self) -> Any:
        try:
            return msgspec.json.decode(self.output_text)
        except msgspec.DecodeError:
            return None

    def as_namespace(self) -> dict[str, Any]:
        return {"output_text": self.output_text, "output_json": self.output_json, "output_tools": self.output_tools}


def template_paths(text: str) -> list[str]:
    return [match.group(1) for match in TEMPLATE.finditer(text)]


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a value (for validate), or None."""
    namespace = path.split(".", 1)[0].split("[", 1)[0]
    if namespace not in NAMESPACES:
        return f"{{{{{path}}}}} names the namespace {namespace!r}; templates name `item` or `sample`"
    if "".join(m.group(0) for m in PATH_PART.finditer(path)).replace(".", "") != path.replace(".", ""):
        return f"{{{{{path}}}}} is not a path of keys and [indices]"
    return None


def lookup(path: str, namespaces: dict[str, Any]) -> Any:
    parts = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in PATH_PART.finditer(path)]
    if problem := path_problem(path):
        raise GradingFailure("invalid_variable_error", problem)
    value: Any = namespaces
    for depth, part in enumerate(parts):
        if parts[:2] == ["sample", "output_json"] and depth == 2 and value is None:
            raise GradingFailure("sample_parse_error", "the sample is not JSON, so sample.output_json has no fields")
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            shown = ".".join(str(p) for p in parts[: depth + 1])
            raise GradingFailure("invalid_variable_error", f"{{{{{path}}}}}: {shown} is not there") from None
    if parts == ["sample", "output_json"] and value is None:
        raise GradingFailure("sample_parse_error", "the sample is not valid JSON, so it has no sample.output_json")
    return value


def render(text: str, namespaces: dict[str, Any]) -> str:
    def fill(match: re.Match) -> str:
        value = lookup(match.group(1), namespaces)
        return value if isinstance(value, str) else msgspec.json.encode(value).decode()

    return TEMPLATE.sub(fill, text)
