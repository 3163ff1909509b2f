"""score_model and label_model: a model that the caller serves reads the filled-in prompt and answers in
a JSON shape that structured outputs hold it to (`{"result": <number>}`, or one of the labels), so a
small model's answer always parses. The server answers through its own engine, a worker through the
server (`ChatModel`), so a grader model is any model GXFT serves, a fine-tuned one included. The cosine
grader's embedding model is reached the same way (`Embedder`).
"""

from typing import Any, NamedTuple, Protocol

import msgspec

from contract.graders import GraderMessage, LabelModelGrader, SamplingParams, ScoreModelGrader
from grading.errors import GradingFailure
from grading.templates import render

DEFAULT_RANGE = (0.0, 1.0)
TEXT_PARTS = ("input_text", "output_text", "text")


class ModelAnswer(NamedTuple):
    text: str
    prompt_tokens: int
    completion_tokens: int


class ModelServerError(Exception):
    """The grader model could not answer (not there, or failed while it generated)."""


class ChatModel(Protocol):
    def complete(self, model: str, messages: list[dict[str, str]], json_schema: dict[str, Any],
                 sampling: SamplingParams | None) -> ModelAnswer: ...


class Embedder(Protocol):
    """The cosine grader's embedding model: unit vectors, one per text; ModelServerError when it cannot answer."""

    def vectors(self, texts: list[str]) -> list[list[float]]: ...


def content_text(content: Any) -> str | None:
    """A message's text: a string, a text part or a list of them; None for any other content (images, audio)."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if not isinstance(part, dict) or part.get("type") not in TEXT_PARTS or not isinstance(part.get("text"), str):
            return None
        texts.append(part["text"])
    return "".join(texts)


def _prompt(messages: list[GraderMessage], namespaces: dict[str, Any]) -> list[dict[str, str]]:
    prompt = []
    for message in messages:
        text = content_text(message.content)
        if text is None:  # validate refuses these; a grader built in code could still hold one
            raise GradingFailure("other_error", "a grader model's messages must be text: images and audio are not read")
        # Chat templates of open models know system, not OpenAI's newer developer role.
        prompt.append({"role": "system" if message.role == "developer" else message.role,
                       "content": render(text, namespaces)})
    return prompt


def _answer(chat: ChatModel, model: str, prompt: list[dict[str, str]], schema: dict[str, Any],
            sampling: SamplingParams | None) -> tuple[Any, ModelAnswer]:
    try:
        answer = chat.complete(model, prompt, schema, sampling)
    except ModelServerError as exc:
        raise GradingFailure("model_grader_server_error", str(exc)) from None
    try:
        return msgspec.json.decode(answer.text)["result"], answer
    except (msgspec.DecodeError, KeyError, TypeError):
        raise GradingFailure("model_grader_parse_error",
                             f"the grader model's answer is not {{\"result\": ...}}: {answer.text[:200]!r}") from None


def score_pattern(low: float, high: float) -> str:
    """A regular expression for a short decimal; one that only a number in [low, high] matches where the
    range is of whole numbers from 0 (as graders' ranges are), so that even a weak model scores in range."""
    decimals = r"(\.[0-9]{1,4})?"
    if low.is_integer() and high.is_integer() and 0 <= low and high - low <= 100:
        # Each whole part but the top one takes any decimals; the top one only zeros.
        below = "|".join(str(part) for part in range(int(low), int(high)))
        return rf"^(({below}){decimals}|{int(high)}(\.0{{1,4}})?)$" if below else rf"^{int(high)}(\.0{{1,4}})?$"
    digits = len(str(int(max(abs(low), abs(high)))))
    return rf"^{'-?' if low < 0 else ''}[0-9]{{1,{digits}}}{decimals}$"


def score(grader: ScoreModelGrader, namespaces: dict[str, Any], chat: ChatModel) -> tuple[float, ModelAnswer]:
    low, high = (float(bound) for bound in grader.range or DEFAULT_RANGE)
    # The score is asked for as a short decimal in a string, whose grammar the answer is held to: a JSON
    # number's grammar would let a weak model write digits until it runs out of tokens (3.1313131…).
    pattern = score_pattern(low, high)
    schema = {"type": "object", "properties": {"result": {"type": "string", "pattern": pattern}},
              "required": ["result"], "additionalProperties": False}
    text, answer = _answer(chat, grader.model, _prompt(grader.input, namespaces), schema, grader.sampling_params)
    try:
        result = float(text)
    except (TypeError, ValueError):
        result = text
    if isinstance(result, bool) or not isinstance(result, float) or not low <= result <= high:
        raise GradingFailure("model_grader_parse_error",
                             f"the grader model scored {result!r}, which is not a number from {low:g} to {high:g}")
    return float(result), answer


def label(grader: LabelModelGrader, namespaces: dict[str, Any], chat: ChatModel) -> tuple[float, ModelAnswer]:
    schema = {"type": "object", "properties": {"result": {"type": "string", "enum": grader.labels}},
              "required": ["result"], "additionalProperties": False}
    result, answer = _answer(chat, grader.model, _prompt(grader.input, namespaces), schema, None)
    if result not in grader.labels:
        raise GradingFailure("model_grader_parse_error", f"the grader model answered {result!r}, not one of the labels")
    return float(result in grader.passing_labels), answer
