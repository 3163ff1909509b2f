"""Graders on the server: the checks behind `/v1/fine_tuning/alpha/graders/validate` (and a reinforcement
job's create), and one grader run on one sample for `/graders/run`.

Grading (grading/) is synchronous: a python grader waits on its child process and a model grader on a
generation. So it runs on a thread, and a model grader's request crosses back to the event loop, where
the inference engine takes it as any chat completion of the same project (fair share included).
"""

from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from contract.graders import AnyGrader, GraderRunResponse, RunGraderRequest, SamplingParams
from grading.checks import GraderProblem, check_grader
from grading.model_graders import ModelAnswer, ModelServerError
from grading.python_sandbox import PythonLimits
from grading.run import GradingTools, grade
from grading.templates import Sample
from server.answers import GatheredChoices
from server.config import Settings
from server.embeddings import Embeddings
from server.errors import APIError, invalid_request
from server.model_catalog import ModelCatalog
from server.serving.engine import InferenceEngine
from server.serving.generation_request import GenerationRequest
from server.serving.params import ResponseFormat
from server.serving.params import SamplingParams as EngineSampling

# A grader model answers with one JSON object; more than this is a model that lost its way.
GRADER_MAX_TOKENS = 512


class EngineGraderModel:
    """A `ChatModel` for grading threads: each request is served by the server's own engine."""

    def __init__(self, catalog: ModelCatalog, engine: InferenceEngine, project: str):
        self.catalog = catalog
        self.engine = engine
        self.project = project

    def complete(self, model: str, messages: list[dict[str, str]], json_schema: dict[str, Any],
                 sampling: SamplingParams | None) -> ModelAnswer:
        return anyio.from_thread.run(self.answer, model, messages, json_schema, sampling)

    async def answer(self, model: str, messages: list[dict[str, str]], json_schema: dict[str, Any],
                     sampling: SamplingParams | None) -> ModelAnswer:
        """The grader model's answer, from the event loop (a worker's request on a reinforcement job)."""
        sampling = sampling or SamplingParams()
        try:
            served = self.catalog.get(self.project, model)
            generation = self.engine.submit(GenerationRequest(
                project=self.project, served=served, prompts=[messages], n=1, chat=True,
                # Greedy unless asked otherwise: a grader that scores the same sample twice should agree.
                params=EngineSampling(temperature=sampling.temperature if sampling.temperature is not None else 0.0,
                                      top_p=sampling.top_p if sampling.top_p is not None else 1.0,
                                      max_tokens=sampling.max_completions_tokens or GRADER_MAX_TOKENS,
                                      seed=sampling.seed),
                response_format=ResponseFormat(name="grader_answer", schema=json_schema),
            ), stream=False)
            outcome = GatheredChoices(1)
            async for event in generation.events():
                outcome.take(event)
        except APIError as exc:
            raise ModelServerError(exc.detail.message) from None
        return ModelAnswer(outcome.texts[0], outcome.prompt_tokens, outcome.completion_tokens)


class Graders:
    def __init__(self, settings: Settings, catalog: ModelCatalog, engine: InferenceEngine, embeddings: Embeddings):
        self.catalog = catalog
        self.engine = engine
        self.embeddings = embeddings
        self.python_limits = PythonLimits(seconds=settings.python_grader_seconds)

    def _model_exists(self, project: str, name: str) -> bool:
        try:
            self.catalog.get(project, name)
        except APIError:
            return False
        return True

    def check(self, project: str, grader: AnyGrader, param: str = "grader") -> None:
        """A 400 naming the field, for the first thing wrong with the grader."""
        try:
            check_grader(grader, lambda name: self._model_exists(project, name), self.embeddings.available)
        except GraderProblem as problem:
            where = f"{param}.{problem.field}" if problem.field else param
            raise invalid_request(f"Invalid grader: {problem.message}.", param=where,
                                  code="invalid_grader") from None

    async def run(self, project: str, request: RunGraderRequest) -> GraderRunResponse:
        self.check(project, request.grader)
        if request.item is not None and not isinstance(request.item, dict):
            raise invalid_request("item must be a JSON object: the dataset line whose fields {{item.*}} names.",
                                  param="item")
        tools = GradingTools(chat=EngineGraderModel(self.catalog, self.engine, project),
                             embedder=self.embeddings, python_limits=self.python_limits)
        sample = Sample(output_text=request.model_sample)
        (response,) = await anyio.to_thread.run_sync(grade, request.grader, [(sample, request.item)], tools)
        return response
