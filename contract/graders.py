"""OpenAI's graders, as they travel: in a reinforcement job's method, to `/v1/fine_tuning/alpha/graders/run`
and `/validate`, and to the worker that grades a job's samples. What each one computes is in grading/.

A multi grader's `graders` is, in OpenAI's guide, an object of named graders (`{"name": {...}, ...}`) that
its `calculate_output` formula names; OpenAI's SDK types it as one grader. Both are taken, and a list too.
"""

from typing import Any, Literal

import msgspec

StringCheckOperation = Literal["eq", "ne", "like", "ilike"]
SimilarityMetric = Literal["cosine", "fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3",
                           "rouge_4", "rouge_5", "rouge_l"]
MessageRole = Literal["user", "assistant", "system", "developer"]
# Echoed as sent: a field left out stays out.
GRADER_OPTIONS: dict[str, Any] = {"forbid_unknown_fields": True, "omit_defaults": True}


class GraderMessage(msgspec.Struct, **GRADER_OPTIONS):
    """One message of a model grader's prompt. `content` is a string, a typed part (`input_text`,
    `output_text`) or a list of them; each text may hold templates."""

    role: MessageRole
    content: Any
    type: Literal["message"] | None = None


class StringCheckGrader(msgspec.Struct, tag_field="type", tag="string_check", **GRADER_OPTIONS):
    name: str
    input: str
    reference: str
    operation: StringCheckOperation


class TextSimilarityGrader(msgspec.Struct, tag_field="type", tag="text_similarity", **GRADER_OPTIONS):
    name: str
    input: str
    reference: str
    evaluation_metric: SimilarityMetric


class PythonGrader(msgspec.Struct, tag_field="type", tag="python", **GRADER_OPTIONS):
    name: str
    source: str
    image_tag: str | None = None  # OpenAI's runtime images; here the grader runs on the machine's Python


class SamplingParams(msgspec.Struct, **GRADER_OPTIONS):
    max_completions_tokens: int | None = None
    reasoning_effort: str | None = None
    seed: int | None = None
    temperature: float | None = None
    top_p: float | None = None


class ScoreModelGrader(msgspec.Struct, tag_field="type", tag="score_model", **GRADER_OPTIONS):
    name: str
    model: str
    input: list[GraderMessage]
    range: list[float] | None = None  # [low, high]; [0, 1] when left out
    sampling_params: SamplingParams | None = None


class LabelModelGrader(msgspec.Struct, tag_field="type", tag="label_model", **GRADER_OPTIONS):
    name: str
    model: str
    input: list[GraderMessage]
    labels: list[str]
    passing_labels: list[str]


SingleGrader = StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader
SINGLE_GRADER_TYPES = (StringCheckGrader, TextSimilarityGrader, PythonGrader, ScoreModelGrader, LabelModelGrader)


class MultiGrader(msgspec.Struct, tag_field="type", tag="multi", **GRADER_OPTIONS):
    name: str
    # One grader, an object of named graders or a list of graders (msgspec cannot tell a grader from an
    # object of graders by type alone, so __post_init__ reads which it is).
    graders: Any
    calculate_output: str

    def __post_init__(self) -> None:
        graders = self.graders
        if isinstance(graders, dict) and "type" not in graders:
            self.graders = {name: _single_grader(value, f"graders.{name}") for name, value in graders.items()}
        elif isinstance(graders, list):
            self.graders = [_single_grader(value, f"graders[{index}]") for index, value in enumerate(graders)]
        else:
            self.graders = _single_grader(graders, "graders")
        if not self.graders:
            raise ValueError("a multi grader's `graders` is empty")

    def named_graders(self) -> dict[str, SingleGrader]:
        """The inner graders by the names the formula uses: the object's keys, or each grader's `name`."""
        if isinstance(self.graders, dict):
            return dict(self.graders)
        graders = self.graders if isinstance(self.graders, list) else [self.graders]
        return {grader.name: grader for grader in graders}


def _single_grader(value: Any, where: str) -> SingleGrader:
    if isinstance(value, SINGLE_GRADER_TYPES):  # already decoded (a Struct built in code)
        return value
    try:
        return msgspec.convert(value, SingleGrader)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{where}: {exc}") from None


# What a job's method and the graders endpoints take: a label_model grader only inside a multi grader.
Grader = StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | MultiGrader
AnyGrader = Grader | LabelModelGrader


class RunGraderRequest(msgspec.Struct, forbid_unknown_fields=True):
    grader: Grader
    model_sample: str
    item: Any = None


class ValidateGraderRequest(msgspec.Struct, forbid_unknown_fields=True):
    grader: Grader


class ValidateGraderResponse(msgspec.Struct):
    grader: Grader


class GraderErrors(msgspec.Struct, kw_only=True):
    """What went wrong while grading one sample (the reward is then 0), flag by flag as OpenAI reports it."""

    formula_parse_error: bool = False
    invalid_variable_error: bool = False
    model_grader_parse_error: bool = False
    model_grader_refusal_error: bool = False
    model_grader_server_error: bool = False
    model_grader_server_error_details: str | None = None
    other_error: bool = False
    python_grader_runtime_error: bool = False
    python_grader_runtime_error_details: str | None = None
    python_grader_server_error: bool = False
    python_grader_server_error_type: str | None = None
    sample_parse_error: bool = False
    truncated_observation_error: bool = False
    unresponsive_reward_error: bool = False


class GraderRunMetadata(msgspec.Struct, kw_only=True):
    name: str
    type: str
    errors: GraderErrors
    execution_time: float
    scores: dict[str, Any]
    token_usage: int | None = None
    sampled_model_name: str | None = None


class GraderRunResponse(msgspec.Struct, kw_only=True):
    reward: float
    metadata: GraderRunMetadata
    sub_rewards: dict[str, Any]
    model_grader_token_usage_per_model: dict[str, Any]
