"""A generation's events gathered into whole answers, for the endpoints that answer whole or stream."""

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request

from server.completions_protocol import FinishReason, Usage
from server.serving.generation_request import ChoiceDone, Event, Failed, Generation, Piece, Started, TokenLogprob


class GatheredChoices:
    """A generation's events, gathered into whole choices and a token count."""

    def __init__(self, choices: int):
        self.texts = [""] * choices
        self.logprobs: list[list[TokenLogprob]] = [[] for _ in range(choices)]
        self.finish_reasons: list[FinishReason] = ["stop"] * choices
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def take(self, event: Event) -> None:
        if isinstance(event, Failed):
            raise event.error
        if isinstance(event, Started):
            self.prompt_tokens = event.prompt_tokens
            for choice, text in event.echoed.items():
                self.texts[choice] = text
        elif isinstance(event, Piece):
            self.texts[event.choice] += event.text
            self.logprobs[event.choice].extend(event.logprobs)
        elif isinstance(event, ChoiceDone):
            self.finish_reasons[event.choice] = event.finish_reason
            self.completion_tokens += event.completion_tokens

    @property
    def usage(self) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
                     total_tokens=self.prompt_tokens + self.completion_tokens)


async def gather_whole(request: Request, generation: Generation) -> GatheredChoices | None:
    """The whole answer; None if the client went away first, which stops the generation."""

    async def gather() -> GatheredChoices:
        outcome = GatheredChoices(generation.choices)
        async for event in generation.events():
            outcome.take(event)
        return outcome

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    answer, hang_up = asyncio.ensure_future(gather()), asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({answer, hang_up}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hang_up.cancel()
        if not answer.done():  # the client went away, or this handler is being cancelled
            answer.cancel()
            generation.cancel()
    return answer.result() if answer.done() and not answer.cancelled() else None


async def taken_on(generation: Generation) -> AsyncIterator[Event]:
    """Wait for the request to be taken on (model loaded, prompt tokenised), so that a bad request
    is still answered with an error status rather than a stream that fails."""
    events = generation.events()
    first = await anext(events)
    if isinstance(first, Failed):
        raise first.error

    async def replay() -> AsyncIterator[Event]:
        yield first
        async for event in events:
            yield event

    return replay()


