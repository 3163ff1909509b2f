"""The Starlette application: routes, middleware, error handlers and start-up."""

import asyncio
import contextlib
import logging
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.auth import AuthMiddleware
from server.config import Settings
from server.endpoints import completions, dashboard, files, fine_tuning, internal, models
from server.errors import APIError, handle_api_error, handle_http_exception, handle_unexpected
from server.file_processing import FileProcessor
from server.job_lifecycle import SCRATCH_KINDS, JobLifecycle, scratch_prefix
from server.model_catalog import ModelCatalog
from server.model_registry import ModelRegistry
from server.openapi import openapi_json
from server.request_ids import RequestIdMiddleware
from server.services import Services
from server.serving.engine import InferenceEngine
from server.worker_roster import WorkerRoster
from storage.blobs import BlobStore
from storage.database import Database
from storage.files import FileRepository
from storage.jobs import JobRepository
from worker.queue import job_queue

log = logging.getLogger("gxft.server")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _remove_orphan_blobs(blobs: BlobStore, files: FileRepository, jobs: JobRepository) -> None:
    """Blobs whose upload committed but whose metadata never did (a crash between the two), and the
    scratch of finished jobs. An unfinished job keeps its scratch: its worker may deliver it yet."""
    live = files.live_ids() | jobs.live_state_blobs()
    keep = tuple(scratch_prefix(kind, job_id) for job_id in jobs.unfinished_ids() for kind in SCRATCH_KINDS)
    for path in blobs.root.iterdir():
        if path.is_file() and path.name not in live and not path.name.startswith(keep):
            path.unlink()


async def _watch_leases(lifecycle: JobLifecycle, lease_seconds: float) -> None:
    while True:
        await asyncio.sleep(max(0.5, lease_seconds / 4))
        try:
            lifecycle.requeue_expired()
        except Exception:
            log.exception("checking job leases failed")


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_path)
        blobs = BlobStore(settings.blobs_dir)
        jobs = JobRepository(db)
        file_repository = FileRepository(db)
        _remove_orphan_blobs(blobs, file_repository, jobs)
        processor = FileProcessor(file_repository, blobs, settings.min_examples)
        registry = ModelRegistry.load(settings.models_file, settings.profile)
        queue = job_queue(settings.queue_path, settings.redis_url)
        workers = WorkerRoster()
        lifecycle = JobLifecycle(settings, jobs, file_repository, blobs, registry, queue, workers)
        engine = InferenceEngine(adapter_slots=settings.adapter_slots, full_model_slots=settings.full_model_slots)
        app.state.services = Services(
            settings=settings, db=db, blobs=blobs, files=file_repository, file_processor=processor,
            jobs=jobs, registry=registry, lifecycle=lifecycle,
            catalog=ModelCatalog(registry, jobs, file_repository, blobs, lifecycle, workers), engine=engine,
            workers=workers,
        )
        processor.resume_pending()
        lifecycle.enqueue_waiting()
        lease_watch = asyncio.get_running_loop().create_task(_watch_leases(lifecycle, settings.lease_seconds))
        log.info("GXFT ready on http://%s:%s (data in %s)", settings.host, settings.port, settings.data_dir)
        try:
            yield
        finally:
            lease_watch.cancel()
            engine.close()
            await processor.close()
            db.close()

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/openapi.json", openapi_json), *files.routes,
                *fine_tuning.routes, *models.routes, *completions.routes, *internal.routes, *dashboard.routes],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(AuthMiddleware, api_keys=settings.api_keys, worker_token=settings.worker_token),
        ],
        exception_handlers={
            APIError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
