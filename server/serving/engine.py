"""The inference engine: one thread that owns the loaded models and runs generation, so the event
loop never waits on torch. torch is imported by that thread on the first request, not before.

Requests waiting when the thread comes round are served together: those on the same loaded model
(a base and its LoRA adapters, or one fully fine-tuned model) share one batch.
"""

import asyncio
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any

from server.errors import APIError
from server.serving.generation_request import Failed, Generation, GenerationRequest

if TYPE_CHECKING:
    pass

log = logging.getLogger("gxft.serving")

_STOP = object()


class _Unavailable:
    """Stands in for the batch runner when serving cannot start, and fails each request with the reason."""

    def __init__(self, reason: str):
        self.error = APIError(503, reason, type="server_error", code="inference_unavailable")

    def place(self, generation: Generation) -> None:
        generation.deliver([Failed(self.error)])
        return None

    def forget(self, checkpoint_id: str) -> None:
        pass


class InferenceEngine:
    def __init__(self, max_batch_rows: int = 32, adapter_slots: int = 8, full_model_slots: int = 2):
        self.max_batch_rows = max_batch_rows
        self.adapter_slots = adapter_slots
        self.full_model_slots = full_model_slots
        self._inbox: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, request: GenerationRequest, stream: bool) -> Generation:
        generation = Generation(request, asyncio.get_running_loop(), stream)
        self._start()
        self._inbox.put(generation)
        return generation

    def forget(self, checkpoint_id: str) -> None:
        """Unload a deleted fine-tuned model, if it is loaded."""
        if self._thread is not None:
            self._inbox.put(("forget", checkpoint_id))

    def close(self) -> None:
        if self._thread is not None:
            self._inbox.put(_STOP)
            self._thread.join(timeout=10)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gxft-inference", daemon=True)
                self._thread.start()

    # The engine thread

    def _run(self) -> None:
        try:
            from server.serving.batching import BatchRunner  # imports torch

            runner: BatchRunner | _Unavailable = BatchRunner(self.adapter_slots, self.full_model_slots,
                                                             self.max_batch_rows)
        except Exception as exc:  # no torch, or a broken install: every request hears why
            log.exception("the inference engine cannot start")
            runner = _Unavailable(f"The inference engine cannot start: {type(exc).__name__}: {exc}")
        while True:
            item = self._inbox.get()
            wave = [item]
            while True:
                try:
                    wave.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if _STOP in wave:
                return
            try:
                self._serve_wave(runner, wave)
            except Exception as exc:  # the engine outlives any one wave; its requests get an error
                log.exception("serving a wave of requests failed")
                error = APIError(500, f"Generation failed: {type(exc).__name__}: {exc}", type="server_error")
                for entry in wave:
                    if isinstance(entry, Generation):
                        entry.deliver([Failed(error)])

    @staticmethod
    def _serve_wave(runner, wave: list) -> None:
        generations = []
        for entry in wave:
            if isinstance(entry, tuple):
                runner.forget(entry[1])
            elif not entry.cancelled:
                generations.append(entry)
        groups: dict[str, tuple[Any, list]] = {}
        for generation in generations:
            placed = runner.place(generation)
            if placed is not None:
                placement, rows = placed
                groups.setdefault(placement.group, (placement.loaded, []))[1].extend(rows)
        for loaded, rows in groups.values():
            runner.run(loaded, rows)
