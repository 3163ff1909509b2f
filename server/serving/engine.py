"""The inference engine: one thread that owns the loaded models and runs generation, so the event
loop never waits on torch. torch is imported by that thread on the first request, not before.

The thread takes what arrived (requests, prepared rows, deleted models) between decoding steps, so
a request joins the running batch at the next step (batching.py). Rendering and tokenising a
request's prompts runs on a second thread, `gxft-prepare`: one thread, as a tokenizer is not safe to
use from several at once, and the decoding thread only decodes with it.
"""

import asyncio
import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.errors import APIError
from server.serving.generation_request import Failed, Generation, GenerationRequest

if TYPE_CHECKING:
    from server.serving.batching import ContinuousBatcher
    from server.serving.generation import Row

log = logging.getLogger("gxft.serving")

_STOP = object()


@dataclass(frozen=True)
class _Forget:
    checkpoint_id: str


@dataclass(frozen=True)
class _Prepared:
    generation: Generation
    rows: "list[Row]"  # empty when preparing failed (the request has heard why)


class InferenceEngine:
    def __init__(self, max_running_rows: int = 32, adapter_slots: int = 8, full_model_slots: int = 2,
                 max_request_tokens: int = 1 << 20):
        self.max_running_rows = max_running_rows
        self.adapter_slots = adapter_slots
        self.full_model_slots = full_model_slots
        self.max_request_tokens = max_request_tokens
        self._inbox: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._prepare = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gxft-prepare")
        self._lock = threading.Lock()

    def submit(self, request: GenerationRequest, stream: bool) -> Generation:
        generation = Generation(request, asyncio.get_running_loop(), stream)
        self._start()
        self._inbox.put(generation)
        return generation

    def forget(self, checkpoint_id: str) -> None:
        """Unload a deleted fine-tuned model, if it is loaded."""
        if self._thread is not None:
            self._inbox.put(_Forget(checkpoint_id))

    def close(self) -> None:
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout=10)
        self._prepare.shutdown(wait=False, cancel_futures=True)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gxft-inference", daemon=True)
                self._thread.start()

    # The engine thread

    def _run(self) -> None:
        try:
            from server.serving.batching import ContinuousBatcher  # imports torch

            batcher = ContinuousBatcher(self.adapter_slots, self.full_model_slots, self.max_running_rows)
        except Exception as exc:  # no torch, or a broken install: every request hears why
            log.exception("the inference engine cannot start")
            self._refuse_all(f"The inference engine cannot start: {type(exc).__name__}: {exc}")
            return
        while True:
            arrived = [self._inbox.get()] if not batcher.busy else []
            while True:
                try:
                    arrived.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            for item in arrived:
                if item is _STOP:
                    return
                self._take(batcher, item)
            try:
                batcher.step()
            except Exception:  # each batch's failure is its rows' (batching.py); this is the engine's own
                log.exception("an engine step failed")

    def _take(self, batcher: "ContinuousBatcher", item: object) -> None:
        if isinstance(item, _Forget):
            batcher.forget(item.checkpoint_id)
        elif isinstance(item, _Prepared):
            batcher.enqueue(item.generation, item.rows)
        elif isinstance(item, Generation) and not item.cancelled:
            placement = batcher.place(item)
            if placement is not None:
                self._prepare.submit(self._prepare_rows, item, placement)

    def _prepare_rows(self, generation: Generation, placement) -> None:
        """On the prepare thread: the request's rows, handed back to the engine thread."""
        from server.serving.batching import rows_for, server_error

        rows: list = []
        try:
            rows, started = rows_for(generation, placement, self.max_request_tokens)
            generation.deliver([started])
        except APIError as exc:
            generation.deliver([Failed(exc)])
        except Exception as exc:
            log.exception("preparing a generation failed")
            generation.deliver([Failed(server_error(exc))])
        self._inbox.put(_Prepared(generation, rows))

    def _refuse_all(self, reason: str) -> None:
        error = APIError(503, reason, type="server_error", code="inference_unavailable")
        while True:
            item = self._inbox.get()
            if item is _STOP:
                return
            if isinstance(item, Generation):
                item.deliver([Failed(error)])
