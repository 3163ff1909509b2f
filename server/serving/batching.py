"""The engine thread's work: requests become rows on a loaded model, and every engine step decodes one
token for every running row, however many requests they answer (continuous batching).

    step: decode one token in every batch → deliver the text → rows that ended leave →
          the fair queue picks the rows to start (and any to preempt for them) → they join a batch

Rows of one loaded model (a base and its LoRA adapters, or one fully fine-tuned model) share a batch.
Turning a request into rows (rendering the chat template, tokenising) is done by `rows_for`, which the
engine runs on another thread, so that a large prompt never holds up the decoding of the others.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, cast

from server.errors import APIError
from server.serving.decoding_batch import DecodingBatch, Step
from server.serving.fair_queue import FairQueue
from server.serving.generation import Row, Sampler, budget, check_text_fits, end_of_turn_ids
from server.serving.generation_request import ChoiceDone, Event, Failed, Generation, GenerationRequest, Piece, Started
from server.serving.model_cache import LoadedModel, ModelCache, Placement
from server.serving.structured_output import GrammarConstraint, compile_schema, compile_tool_calls, grammar_tokenizer
from server.serving.text import TextAssembler

log = logging.getLogger("gxft.serving")


def server_error(exc: Exception) -> APIError:
    return APIError(500, f"Generation failed: {type(exc).__name__}: {exc}", type="server_error")


def _too_many_tokens(counted: int, prompts: int, of: int, n: int, cap: int) -> APIError:
    return APIError(
        400, f"This request asks for more than the {cap:,} tokens one request may take (GXFT_MAX_REQUEST_TOKENS): "
             f"its first {prompts} of {of} prompts, times n={n}, already ask for {counted:,} (prompt tokens plus "
             "max_tokens or, where it is not given, the room left in the context). Set max_tokens, or send fewer "
             "prompts or a smaller n.",
        param="max_tokens", code="request_too_large",
    )


def _grammar(request: GenerationRequest, loaded: LoadedModel, eos_ids: frozenset[int]) -> str | None:
    """The grammar every answer follows: the calls tool_choice forces, or response_format's schema."""
    if request.tool_grammar is None and request.response_format is None:
        return None
    if loaded.grammar_tokenizer is None:
        loaded.grammar_tokenizer = grammar_tokenizer(loaded.tokenizer, loaded.model.config.get_text_config().vocab_size,
                                                     eos_ids)
    if request.tool_grammar is not None:
        return compile_tool_calls(request.tool_grammar, loaded.grammar_tokenizer)
    assert request.response_format is not None
    return compile_schema(request.response_format.schema, loaded.grammar_tokenizer, request.response_format.name)


def _render(tokenizer, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    try:
        text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        if tools and text == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True):
            raise APIError(400, "This model's chat template cannot render tools: it ignores them, so the model would "
                                "never see them. Use a model whose chat template supports tools, or leave 'tools' out.",
                           param="tools")
    except APIError:
        raise
    except Exception as exc:
        raise APIError(400, f"The model's chat template cannot render these messages: {exc}",
                       param="messages") from exc
    return text


def rows_for(generation: Generation, placement: Placement, max_request_tokens: int) -> tuple[list[Row], Started]:
    """The request's rows: each prompt rendered, tokenised and checked, times `n`. Raises APIError."""
    request = generation.request
    loaded = placement.loaded
    tokenizer = loaded.tokenizer
    eos_ids = end_of_turn_ids(tokenizer, loaded.model)
    sampler = Sampler(request.params, loaded.model.config.get_text_config().vocab_size, loaded.device)
    context_length = request.served.base.context_length
    grammar = _grammar(request, loaded, eos_ids)
    rows, echoed, prompt_tokens, asked_tokens = [], {}, 0, 0
    param = "messages" if request.chat else "prompt"
    for prompt_index, prompt in enumerate(request.prompts):
        check_text_fits(prompt, loaded.longest_token_bytes, context_length, param)
        if request.chat:
            text = _render(tokenizer, cast(list[dict[str, Any]], prompt), request.tools)
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
        asked_tokens += (len(prompt_ids) + max_new) * request.n
        if asked_tokens > max_request_tokens:
            raise _too_many_tokens(asked_tokens, prompt_index + 1, len(request.prompts), request.n, max_request_tokens)
        for copy in range(request.n):
            choice = prompt_index * request.n + copy
            if request.echo:
                echoed[choice] = prompt if isinstance(prompt, str) else tokenizer.decode(prompt_ids)
            rows.append(Row(
                owner=generation, choice=choice, prompt_ids=prompt_ids, adapter=placement.adapter,
                sampler=sampler, text=TextAssembler(tokenizer, request.params.stop), max_new_tokens=max_new,
                eos_ids=eos_ids, group=placement.group, project=request.project,
                top_logprobs=request.top_logprobs,
                constraint=GrammarConstraint(loaded.grammar_tokenizer, grammar) if grammar is not None else None,
            ))
    return rows, Started(prompt_tokens=prompt_tokens, echoed=echoed)


class ContinuousBatcher:
    def __init__(self, adapter_slots: int, full_model_slots: int, max_running_rows: int):
        self.cache = ModelCache(adapter_slots, full_model_slots, in_use=self._adapters_in_use)
        self.queue = FairQueue(max_running_rows)
        self._batches: dict[str, list[DecodingBatch]] = defaultdict(list)  # by loaded model (Placement.group)
        self._loaded: dict[str, LoadedModel] = {}
        self._preparing: dict[int, Placement] = {}  # generations being turned into rows on another thread
        self._forgotten: set[str] = set()  # deleted models to unload once no row runs on them

    @property
    def busy(self) -> bool:
        return self.queue.busy

    def place(self, generation: Generation) -> Placement | None:
        """Load what the request needs; on failure, tell the request."""
        try:
            placement = self.cache.place(generation.request.served)
        except APIError as exc:
            generation.deliver([Failed(exc)])
            return None
        except Exception as exc:
            log.exception("loading a model failed")
            generation.deliver([Failed(server_error(exc))])
            return None
        self._preparing[id(generation)] = placement
        self._loaded[placement.group] = placement.loaded
        return placement

    def enqueue(self, generation: Generation, rows: list[Row]) -> None:
        """Rows made by `rows_for` (or none, when it failed) join the queue."""
        self._preparing.pop(id(generation), None)
        if rows and not generation.cancelled:
            log.info("queued %d rows of a request of project %s on %s", len(rows), rows[0].project, rows[0].group)
            self.queue.add(rows)

    def forget(self, checkpoint_id: str) -> None:
        """Unload a deleted fine-tuned model, once no row runs on it."""
        self._forgotten.add(checkpoint_id)
        self._forget_unused()

    def step(self) -> None:
        for group, batches in list(self._batches.items()):
            for batch in batches:
                if batch.rows:
                    self._guarded(batch, batch.step)
            self._batches[group] = [batch for batch in batches if batch.rows]
        self.queue.drop_cancelled()
        admitted, preempted = self.queue.plan()
        for row in preempted:
            log.info("preempted a row of project %s after %d tokens, to make room for another project's",
                     row.project, len(row.generated))
            for batch in self._batches[row.group]:
                batch.remove([row])
        by_group: dict[str, list[Row]] = defaultdict(list)
        for row in admitted:
            by_group[row.group].append(row)
        for group, rows in by_group.items():
            self._join(group, rows)
        self._forget_unused()

    def _join(self, group: str, rows: list[Row]) -> None:
        batches = self._batches[group]
        batch = next((b for b in batches if b.can_take_newcomers), None)
        if batch is None:
            batch = DecodingBatch(self._loaded[group])
            batches.append(batch)
        self._guarded(batch, lambda: batch.join(rows), joining=rows)

    def _guarded(self, batch: DecodingBatch, run: Callable[[], Step], joining: list[Row] | None = None) -> None:
        """Run a batch's forward pass and deliver its tokens; a failure ends the batch's rows with an error."""
        try:
            step = run()
        except Exception as exc:
            log.exception("generation failed")
            rows = batch.rows + (joining or [])
            for owner in {id(row.owner): row.owner for row in rows}.values():
                owner.deliver([Failed(server_error(exc))])
                owner.cancel()  # its rows still waiting, or in other batches, answer nobody now
            batch.remove(batch.rows)
            self.queue.ended(rows)
            return
        self._deliver(step)
        ended = [row for row in batch.rows if row.finish_reason is not None]
        batch.remove(ended)
        self.queue.ended(ended)

    @staticmethod
    def _deliver(step: Step) -> None:
        by_owner: dict[Generation, list[Event]] = defaultdict(list)
        for row, text in step:
            if row.owner.cancelled:  # its client went away: nothing more to generate or send
                if row.finish_reason is None:
                    log.info("its client went away: stopped choice %d after %d of at most %d tokens", row.choice,
                             len(row.generated), row.max_new_tokens)
                row.finish_reason = row.finish_reason or "cancelled"
                continue
            events = by_owner[row.owner]
            logprobs, row.logprobs = row.logprobs, []
            if text or logprobs:
                events.append(Piece(row.choice, text, logprobs))
            if row.finish_reason is not None and row.finish_reason != "cancelled":
                events.append(ChoiceDone(row.choice, row.finish_reason, len(row.generated)))
        for owner, events in by_owner.items():
            if events:
                owner.deliver(events)

    def _adapters_in_use(self) -> set[str]:
        """The adapters of rows waiting or running, and of requests being turned into rows."""
        return {row.adapter for row in self.queue.rows()} | {p.adapter for p in self._preparing.values()}

    def _forget_unused(self) -> None:
        if not self._forgotten:
            return
        in_use = self._adapters_in_use() | {row.group for row in self.queue.rows()}
        in_use |= {p.group for p in self._preparing.values()}
        for checkpoint_id in list(self._forgotten - in_use):
            self.cache.forget(checkpoint_id)
            self._forgotten.discard(checkpoint_id)
