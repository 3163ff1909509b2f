"""One grader over samples: each sample's reward and OpenAI's account of it (`GraderRunResponse`).

A sample that cannot be graded (a template naming nothing, a python grader that raises, a grader model
that fails) scores 0 with the matching flag raised in `metadata.errors`; grading itself never raises.
Samples are graded as a batch so that a python grader starts one child process for all of them.
"""

import time
from dataclasses import dataclass, field
from typing import Any

from contract.graders import (
    AnyGrader,
    GraderErrors,
    GraderRunMetadata,
    GraderRunResponse,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)
from grading import model_graders
from grading.errors import GradingFailure
from grading.formula import calculate
from grading.model_graders import ChatModel, Embedder, ModelAnswer, ModelServerError
from grading.python_sandbox import PythonLimits, run_python_grader
from grading.templates import Sample, render
from grading.text_metrics import cosine, similarity, string_check


@dataclass(frozen=True)
class GradingTools:
    """What graders need from their caller: a way to reach grader models and the embedding model, and the
    python grader's limits."""

    chat: ChatModel | None = None
    embedder: Embedder | None = None
    python_limits: PythonLimits = field(default_factory=PythonLimits)


@dataclass
class _Outcome:
    reward: float | GradingFailure
    sub_rewards: dict[str, float] = field(default_factory=dict)
    answers: dict[str, ModelAnswer] = field(default_factory=dict)  # by grader model


def _namespaces(sample: Sample, item: Any) -> dict[str, Any]:
    return {"item": item if item is not None else {}, "sample": sample.as_namespace()}


def _each(cases: list[tuple[Sample, Any]], one) -> list[_Outcome]:
    outcomes = []
    for sample, item in cases:
        try:
            outcomes.append(one(_namespaces(sample, item)))
        except GradingFailure as failure:
            outcomes.append(_Outcome(failure))
    return outcomes


def _cosines(grader: TextSimilarityGrader, cases: list[tuple[Sample, Any]], embedder: Embedder | None
             ) -> list[_Outcome]:
    """One request to the embedding model for every sample's input and reference."""
    pairs: list[tuple[str, str] | GradingFailure] = []
    for sample, item in cases:
        namespaces = _namespaces(sample, item)
        try:
            pairs.append((render(grader.input, namespaces), render(grader.reference, namespaces)))
        except GradingFailure as failure:
            pairs.append(failure)
    texts = [text for pair in pairs if isinstance(pair, tuple) for text in pair]
    try:
        if embedder is None:
            raise ModelServerError("no embedding model can be reached from here")
        vectors = iter(embedder.vectors(texts) if texts else [])
    except ModelServerError as exc:
        unanswered = GradingFailure("model_grader_server_error", f"the embedding model could not answer: {exc}")
        return [_Outcome(pair if isinstance(pair, GradingFailure) else unanswered) for pair in pairs]
    return [_Outcome(pair if isinstance(pair, GradingFailure) else cosine(next(vectors), next(vectors)))
            for pair in pairs]


def _outcomes(grader: AnyGrader, cases: list[tuple[Sample, Any]], tools: GradingTools) -> list[_Outcome]:
    if isinstance(grader, TextSimilarityGrader) and grader.evaluation_metric == "cosine":
        return _cosines(grader, cases, tools.embedder)
    if isinstance(grader, StringCheckGrader):
        return _each(cases, lambda ns: _Outcome(string_check(render(grader.input, ns), render(grader.reference, ns),
                                                             grader.operation)))
    if isinstance(grader, TextSimilarityGrader):
        return _each(cases, lambda ns: _Outcome(similarity(render(grader.input, ns), render(grader.reference, ns),
                                                           grader.evaluation_metric)))
    if isinstance(grader, PythonGrader):
        python_cases = [(sample.as_namespace(), item if item is not None else {}) for sample, item in cases]
        return [_Outcome(result) for result in run_python_grader(grader.source, python_cases, tools.python_limits)]
    if isinstance(grader, (ScoreModelGrader, LabelModelGrader)):
        model_grader = model_graders.score if isinstance(grader, ScoreModelGrader) else model_graders.label
        if tools.chat is None:
            failure = GradingFailure("model_grader_server_error", "no grader model can be reached from here")
            return [_Outcome(failure) for _ in cases]
        chat = tools.chat

        def by_model(ns: dict[str, Any]) -> _Outcome:
            reward, answer = model_grader(grader, ns, chat)  # type: ignore[arg-type]
            return _Outcome(reward, answers={grader.model: answer})

        return _each(cases, by_model)
    assert isinstance(grader, MultiGrader)
    inner = {name: _outcomes(sub, cases, tools) for name, sub in grader.named_graders().items()}
    outcomes = []
    for index in range(len(cases)):
        mine = {name: results[index] for name, results in inner.items()}
        answers = {model: answer for outcome in mine.values() for model, answer in outcome.answers.items()}
        failed = [outcome.reward for outcome in mine.values() if isinstance(outcome.reward, GradingFailure)]
        rewards = {name: outcome.reward for name, outcome in mine.items() if isinstance(outcome.reward, float)}
        if failed:
            outcomes.append(_Outcome(failed[0], rewards, answers))
            continue
        try:
            outcomes.append(_Outcome(calculate(grader.calculate_output, rewards), rewards, answers))
        except GradingFailure as failure:
            outcomes.append(_Outcome(failure, rewards, answers))
    return outcomes


def _response(grader: AnyGrader, outcome: _Outcome, seconds: float) -> GraderRunResponse:
    errors = GraderErrors()
    reward = outcome.reward
    if isinstance(reward, GradingFailure):
        setattr(errors, reward.flag, True)
        if reward.flag == "python_grader_runtime_error":
            errors.python_grader_runtime_error_details = reward.details
        elif reward.flag == "python_grader_server_error":
            errors.python_grader_server_error_type = reward.server_error_type or "error"
        elif reward.flag == "model_grader_server_error":
            errors.model_grader_server_error_details = reward.details
    value = reward if isinstance(reward, float) else 0.0
    usage = {model: {"prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
                     "total_tokens": a.prompt_tokens + a.completion_tokens} for model, a in outcome.answers.items()}
    models = list(outcome.answers)
    return GraderRunResponse(
        reward=value,
        metadata=GraderRunMetadata(
            name=grader.name, type=grader.__struct_config__.tag, errors=errors,  # type: ignore[arg-type]
            execution_time=seconds, scores={grader.name: value, **outcome.sub_rewards},
            token_usage=sum(u["total_tokens"] for u in usage.values()) if usage else None,
            sampled_model_name=models[0] if len(models) == 1 else None,
        ),
        sub_rewards=dict(outcome.sub_rewards),
        model_grader_token_usage_per_model=usage,
    )


def grade(grader: AnyGrader, cases: list[tuple[Sample, Any]], tools: GradingTools) -> list[GraderRunResponse]:
    """Each (sample, item)'s reward, with its metadata; `item` is the dataset line (None: an empty item)."""
    started = time.perf_counter()
    outcomes = _outcomes(grader, cases, tools)
    seconds = (time.perf_counter() - started) / max(len(cases), 1)
    return [_response(grader, outcome, seconds) for outcome in outcomes]


def failure_text(response: GraderRunResponse) -> str | None:
    """The reason a sample scored 0 by failing, in a line, or None."""
    errors = response.metadata.errors
    raised = [name for name in errors.__struct_fields__ if getattr(errors, name) is True]
    if not raised:
        return None
    details = (errors.python_grader_runtime_error_details or errors.model_grader_server_error_details
               or errors.python_grader_server_error_type or "")
    return f"{', '.join(raised)}{': ' + details.strip() if details else ''}"
