"""The engine thread's work: turn requests into rows on a loaded model, run them in batches,
and hand each request its events."""

import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import cast

from server.errors import APIError
from server.serving.generation import BASE_ADAPTER, Row, Sampler, budget, check_text_fits, end_of_turn_ids, generate
from server.serving.generation_request import ChoiceDone, Event, Failed, Generation, Piece, Started
from server.serving.model_cache import LoadedModel, ModelCache, Placement
from server.serving.text import TextAssembler

log = logging.getLogger("gxft.serving")


def _server_error(exc: Exception) -> APIError:
    return APIError(500, f"Generation failed: {type(exc).__name__}: {exc}", type="server_error")


@contextlib.contextmanager
def _adapters_for(loaded: LoadedModel, adapters: set[str]) -> Iterator[bool]:
    """Set up the model for a batch's adapters; yield whether rows need peft's per-row (mixed) forward,
    which is slower than one adapter, or none, for the whole batch."""
    if not loaded.has_adapters:
        yield False
    elif adapters == {BASE_ADAPTER}:
        with loaded.model.disable_adapter():
            yield False
    elif len(adapters) == 1:
        loaded.model.set_adapter(next(iter(adapters)))
        yield False
    else:
        yield True


class BatchRunner:
    def __init__(self, adapter_slots: int, full_model_slots: int, max_batch_rows: int):
        self.cache = ModelCache(adapter_slots, full_model_slots)
        self.max_batch_rows = max_batch_rows

    def forget(self, checkpoint_id: str) -> None:
        self.cache.forget(checkpoint_id)

    def place(self, generation: Generation) -> tuple[Placement, list[Row]] | None:
        """Load what the request needs and tokenise its prompts; on failure, tell the request."""
        try:
            placement = self.cache.place(generation.request.served)
            rows, started = self._rows(generation, placement)
        except APIError as exc:
            generation.deliver([Failed(exc)])
            return None
        except Exception as exc:
            log.exception("preparing a generation failed")
            generation.deliver([Failed(_server_error(exc))])
            return None
        generation.deliver([started])
        return placement, rows

    def _rows(self, generation: Generation, placement: Placement) -> tuple[list[Row], Started]:
        request = generation.request
        loaded = placement.loaded
        tokenizer = loaded.tokenizer
        eos_ids = end_of_turn_ids(tokenizer, loaded.model)
        sampler = Sampler(request.params, loaded.model.config.get_text_config().vocab_size, loaded.device)
        context_length = request.served.base.context_length
        rows, echoed, prompt_tokens = [], {}, 0
        param = "messages" if request.chat else "prompt"
        for prompt_index, prompt in enumerate(request.prompts):
            check_text_fits(prompt, loaded.longest_token_bytes, context_length, param)
            if request.chat:
                try:
                    text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
                except Exception as exc:
                    raise APIError(400, f"The model's chat template cannot render these messages: {exc}",
                                   param="messages") from exc
                prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            elif isinstance(prompt, str):
                prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            else:
                prompt_ids = cast(list[int], prompt)  # completions' token ids
                if max(prompt_ids) >= len(tokenizer) or min(prompt_ids) < 0:
                    raise APIError(400, f"'prompt' holds token ids outside this model's vocabulary (0 to "
                                        f"{len(tokenizer) - 1}).", param="prompt")
            if not prompt_ids:
                raise APIError(400, "The prompt is empty.", param="prompt")
            max_new = budget(prompt_ids, request.params, context_length, param)
            prompt_tokens += len(prompt_ids)
            for copy in range(request.n):
                choice = prompt_index * request.n + copy
                if request.echo:
                    echoed[choice] = prompt if isinstance(prompt, str) else tokenizer.decode(prompt_ids)
                rows.append(Row(
                    owner=generation, choice=choice, prompt_ids=prompt_ids, adapter=placement.adapter,
                    sampler=sampler, text=TextAssembler(tokenizer, request.params.stop), max_new_tokens=max_new,
                    eos_ids=eos_ids,
                ))
        return rows, Started(prompt_tokens=prompt_tokens, echoed=echoed)

    def run(self, loaded: LoadedModel, rows: list[Row]) -> None:
        for start in range(0, len(rows), self.max_batch_rows):
            self._run_batch(loaded, rows[start:start + self.max_batch_rows])

    def _run_batch(self, loaded: LoadedModel, rows: list[Row]) -> None:
        try:
            with _adapters_for(loaded, {row.adapter for row in rows}) as mixed:
                generate(loaded.model, rows, loaded.tokenizer.pad_token_id, loaded.device, mixed, self._deliver)
        except Exception as exc:
            log.exception("generation failed")
            failed = {id(row.owner): row.owner for row in rows if row.finish_reason is None}
            for owner in failed.values():
                owner.deliver([Failed(_server_error(exc))])

    @staticmethod
    def _deliver(step: list[tuple[Row, str]]) -> None:
        by_owner: dict[Generation, list[Event]] = defaultdict(list)
        for row, piece in step:
            if row.owner.cancelled:  # its client went away: nothing more to generate or send
                row.finish_reason = row.finish_reason or "cancelled"
                continue
            events = by_owner[row.owner]
            if piece:
                events.append(Piece(row.choice, piece))
            if row.finish_reason is not None and row.finish_reason != "cancelled":
                events.append(ChoiceDone(row.choice, row.finish_reason, len(row.generated)))
        for owner, events in by_owner.items():
            if events:
                owner.deliver(events)
