"""What a grader must be before anything is graded with it: the checks of `/graders/validate`, also run
when a reinforcement job is created, so that a job never fails on a grader that could not work.

Each problem names the field it is about, as a path under the grader (`graders.exact.reference`).
"""

import ast
from collections.abc import Callable

from contract.graders import (
    AnyGrader,
    GraderMessage,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)
from grading.formula import formula_problem
from grading.model_graders import content_text
from grading.python_sandbox import MAX_SOURCE_BYTES
from grading.templates import path_problem, template_paths


class GraderProblem(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field  # under the grader: "" for the grader itself
        self.message = message


def _templates(text: str, field: str) -> None:
    for path in template_paths(text):
        if problem := path_problem(path):
            raise GraderProblem(field, problem)


def _messages(messages: list[GraderMessage], field: str) -> None:
    if not messages:
        raise GraderProblem(field, "a grader model needs at least one input message")
    for index, message in enumerate(messages):
        text = content_text(message.content)
        if text is None:
            raise GraderProblem(f"{field}[{index}].content", "a grader model's messages must be text (a string, or "
                                "input_text and output_text parts): this server's models read no images or audio")
        _templates(text, f"{field}[{index}].content")


def _python(grader: PythonGrader) -> None:
    if len(grader.source.encode()) > MAX_SOURCE_BYTES:
        raise GraderProblem("source", f"a python grader's source may be at most {MAX_SOURCE_BYTES // 1024} kB")
    try:
        tree = ast.parse(grader.source, "grader.py")
    except SyntaxError as exc:
        raise GraderProblem("source", f"the source does not compile: {exc.msg} (line {exc.lineno})") from None
    if not any(isinstance(node, ast.FunctionDef) and node.name == "grade" for node in tree.body):
        raise GraderProblem("source", "the source must define a function grade(sample, item) that returns a number")


def check_grader(grader: AnyGrader, model_exists: Callable[[str], bool], can_embed: bool,
                 inside_multi: bool = False) -> None:
    """Raise GraderProblem for the first thing wrong with the grader; `model_exists` says whether a
    grader model is one this server serves to the caller, `can_embed` whether it has an embedding model."""
    if not grader.name.strip():
        raise GraderProblem("name", "a grader needs a name")
    if isinstance(grader, (StringCheckGrader, TextSimilarityGrader)):
        _templates(grader.input, "input")
        _templates(grader.reference, "reference")
        if isinstance(grader, TextSimilarityGrader) and grader.evaluation_metric == "cosine" and not can_embed:
            raise GraderProblem("evaluation_metric", "cosine similarity needs an embedding model, and this server "
                                "has none (start it with GXFT_EMBEDDING_MODEL set to one); fuzzy_match, bleu, "
                                "gleu, meteor and the rouge metrics need no model")
    elif isinstance(grader, PythonGrader):
        _python(grader)
    elif isinstance(grader, (ScoreModelGrader, LabelModelGrader)):
        if isinstance(grader, LabelModelGrader) and not inside_multi:
            raise GraderProblem("type", "a label_model grader is used inside a multi grader")
        if not model_exists(grader.model):
            raise GraderProblem("model", f"the grader model {grader.model!r} is not a model this server serves "
                                "(GET /v1/models lists them)")
        _messages(grader.input, "input")
        if isinstance(grader, ScoreModelGrader):
            _score_model(grader)
        else:
            _label_model(grader)
    else:
        assert isinstance(grader, MultiGrader)
        named = grader.named_graders()
        for name, inner in named.items():
            try:
                check_grader(inner, model_exists, can_embed, inside_multi=True)
            except GraderProblem as inner_problem:
                where = f"graders.{name}" if isinstance(grader.graders, dict) else "graders"
                raise GraderProblem(f"{where}.{inner_problem.field}".rstrip("."), inner_problem.message) from None
        if problem := formula_problem(grader.calculate_output, set(named)):
            raise GraderProblem("calculate_output", problem)


def _score_model(grader: ScoreModelGrader) -> None:
    if grader.range is not None and (len(grader.range) != 2 or not grader.range[0] < grader.range[1]):
        raise GraderProblem("range", "range must be [low, high] with low below high")
    params = grader.sampling_params
    if params is None:
        return
    if params.temperature is not None and not 0 <= params.temperature <= 2:
        raise GraderProblem("sampling_params.temperature", "temperature must be from 0 to 2")
    if params.top_p is not None and not 0 < params.top_p <= 1:
        raise GraderProblem("sampling_params.top_p", "top_p must be above 0 and at most 1")
    if params.max_completions_tokens is not None and params.max_completions_tokens < 1:
        raise GraderProblem("sampling_params.max_completions_tokens", "max_completions_tokens must be at least 1")


def _label_model(grader: LabelModelGrader) -> None:
    if not grader.labels or len(set(grader.labels)) != len(grader.labels):
        raise GraderProblem("labels", "labels must be a non-empty list of distinct labels")
    if not grader.passing_labels or not set(grader.passing_labels) <= set(grader.labels):
        raise GraderProblem("passing_labels", "passing_labels must be a non-empty subset of labels")
