"""A generation request as it travels from an endpoint to the engine thread, and the events that
come back: the contract between the endpoints (server/endpoints/completions.py), the engine
(engine.py) and the batch runner (batching.py)."""

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.completions_protocol import FinishReason
from server.errors import APIError
from server.model_catalog import ServedModel
from server.serving.params import ResponseFormat, SamplingParams

Prompt = list[dict[str, Any]] | str | list[int]  # chat messages, a text, or token ids


@dataclass(frozen=True)
class GenerationRequest:
    project: str  # whose request: the engine shares itself fairly between projects
    served: ServedModel
    prompts: Sequence[Prompt]
    n: int
    params: SamplingParams
    chat: bool
    echo: bool = False
    top_logprobs: int | None = None  # None: no logprobs; else how many alternatives each token lists
    response_format: ResponseFormat | None = None  # a JSON schema every answer follows
    tools: list[dict[str, Any]] | None = None  # rendered by the chat template
    tool_grammar: str | None = None  # the calls every answer must make (tool_choice "required" or named)


@dataclass(frozen=True)
class Started:
    prompt_tokens: int
    echoed: dict[int, str]  # choice → the prompt text it starts with (completions' `echo`)


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    top: list[tuple[str, float]]  # the most likely tokens at this place, most likely first


@dataclass(frozen=True)
class Piece:
    choice: int
    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of the tokens generated since the last piece


@dataclass(frozen=True)
class ChoiceDone:
    choice: int
    finish_reason: FinishReason
    completion_tokens: int


@dataclass(frozen=True)
class Failed:
    error: APIError


Event = Started | Piece | ChoiceDone | Failed


class Generation:
    """A submitted request as its endpoint sees it: a stream of events, ending after its last
    ChoiceDone or a Failed."""

    def __init__(self, request: GenerationRequest, loop: asyncio.AbstractEventLoop, stream: bool):
        self.request = request
        self.choices = request.n * len(request.prompts)
        self.cancelled = False  # read by the engine thread between steps
        self._stream = stream
        self._loop = loop
        self._buffer: list[Event] = []
        self._lock = threading.Lock()
        self._woken = False
        self._ready = asyncio.Event()

    def deliver(self, events: list[Event]) -> None:
        """Called from the engine thread. The event loop is woken once per batch of events it has
        not read yet, and for an answer that is not streamed only when a choice ends: waking it
        for every token would cost more than generating the token."""
        with self._lock:
            self._buffer.extend(events)
            if self._woken or not (self._stream or any(isinstance(e, (ChoiceDone, Failed)) for e in events)):
                return
            self._woken = True
        self._loop.call_soon_threadsafe(self._ready.set)

    async def events(self) -> AsyncIterator[Event]:
        open_choices = self.choices
        while open_choices:
            await self._ready.wait()
            with self._lock:
                self._ready.clear()
                self._woken = False
                events, self._buffer = self._buffer, []
            for event in events:
                yield event
                if isinstance(event, Failed):
                    return
                if isinstance(event, ChoiceDone):
                    open_choices -= 1

    def cancel(self) -> None:
        self.cancelled = True
