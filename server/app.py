"""The Starlette application: routes, middleware, error handlers and start-up."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from contract.job_queue import open_queue
from server.auth import AuthMiddleware
from server.base_models import BaseModelRegistry
from server.checkpoint_permissions import CheckpointPermissions
from server.config import DEFAULT_PROJECT, Settings
from server.custom_models import CustomModels
from server.embeddings import OPENAI_EMBEDDING_MODELS, Embeddings
from server.endpoints import (
    checkpoint_permissions,
    completions,
    custom_models,
    dashboard,
    datasets,
    embeddings,
    files,
    fine_tuning,
    graders,
    internal,
    models,
    responses_api,
    stored_completions,
    uploads,
    webhooks,
)
from server.errors import APIError, handle_api_error, handle_http_exception, handle_unexpected
from server.files.store import FileStore
from server.files.uploads import Uploads
from server.files.validation import FileValidator
from server.graders import Graders
from server.jobs.admission import JobAdmission
from server.jobs.results import JobResults
from server.jobs.transitions import JobTransitions
from server.model_catalog import ModelCatalog
from server.openapi import openapi_json
from server.request_ids import RequestIdMiddleware
from server.responses_api.store import StoredResponses
from server.services import Services
from server.serving.engine import InferenceEngine
from server.stored_completions import StoredCompletions
from server.webhooks.outbox import WebhookOutbox
from server.webhooks.sender import WebhookSender
from server.webhooks.subscriptions import WebhookSubscriptions
from server.wire_cache import WireCache
from server.worker_roster import WorkerRoster
from storage.blobs import BlobStore
from storage.checkpoint_permissions import PermissionRepository
from storage.custom_models import CustomModelRepository
from storage.database import Database
from storage.files import FileRepository
from storage.jobs import JobRepository
from storage.stored_answers import StoredAnswerRepository
from storage.uploads import UploadRepository
from storage.webhooks import WebhookRepository
from storage.workers import WorkerRepository

log = logging.getLogger("gxft.server")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def _housekeeping(transitions: JobTransitions, files: FileStore, uploads: Uploads,
                        lease_seconds: float) -> None:
    """Jobs whose worker went silent are queued again; files and uploads past their expiry go."""
    while True:
        await asyncio.sleep(max(0.5, lease_seconds / 4))
        try:
            transitions.requeue_expired()
            files.sweep_expired()
            uploads.sweep_expired()
        except Exception:
            log.exception("housekeeping failed")


def create_app(settings: Settings, registry: BaseModelRegistry | None = None) -> Starlette:
    """The API app; `registry` is the one `gxft serve` already read (and reported on) at start."""
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_path)
        blobs = BlobStore(settings.blobs_dir)
        jobs = JobRepository(db)
        file_store = FileStore(FileRepository(db), blobs, settings.quota_file_bytes)
        results = JobResults(jobs, file_store, blobs, settings.dialect)
        upload_store = Uploads(UploadRepository(db), file_store, settings.upload_expiry_seconds)
        upload_store.sweep_expired()
        results.sweep(upload_parts=upload_store.part_ids())
        file_store.sweep_expired()
        validator = FileValidator(file_store, settings.min_examples)
        models = registry or BaseModelRegistry.load(settings.models_file, settings.profile, settings.models_dir)
        queue = open_queue(settings.queue_path, settings.redis_url)
        workers = WorkerRoster(WorkerRepository(db))
        webhook_records = WebhookRepository(db)
        transitions = JobTransitions(settings, jobs, file_store, models, queue, results,
                                     WebhookOutbox(webhook_records))
        webhook_sender = WebhookSender(webhook_records, settings.webhook_retry_seconds)
        custom_records = CustomModelRepository(db)
        stored_answers = StoredAnswerRepository(db)
        engine = InferenceEngine(max_running_rows=settings.max_running_rows, adapter_slots=settings.adapter_slots,
                                 full_model_slots=settings.full_model_slots,
                                 max_request_tokens=settings.max_request_tokens)
        catalog = ModelCatalog(models, jobs, file_store, results, workers, custom_records)
        embeddings = Embeddings(settings.embedding_model, settings.embedding_model_name,
                                OPENAI_EMBEDDING_MODELS if settings.profile == "emulator" else ())
        graders = Graders(settings, catalog, engine, embeddings)
        app.state.services = Services(
            settings=settings, files=file_store, uploads=upload_store, file_validator=validator, jobs=jobs,
            registry=models,
            admission=JobAdmission(settings, jobs, file_store, models, workers, queue, graders),
            transitions=transitions,
            results=results, catalog=catalog,
            custom_models=CustomModels(custom_records, jobs, file_store, models), engine=engine,
            workers=workers, wire_cache=WireCache(jobs), webhooks=WebhookSubscriptions(webhook_records),
            webhook_sender=webhook_sender, stored_completions=StoredCompletions(stored_answers),
            stored_responses=StoredResponses(stored_answers), graders=graders, embeddings=embeddings,
            checkpoint_permissions=CheckpointPermissions(
                jobs, PermissionRepository(db), set(settings.api_keys.values()) or {DEFAULT_PROJECT}),
        )
        validator.resume_pending()
        transitions.enqueue_waiting()
        housekeeping = asyncio.get_running_loop().create_task(
            _housekeeping(transitions, file_store, upload_store, settings.lease_seconds))
        delivering = asyncio.get_running_loop().create_task(webhook_sender.run())
        log.info("GXFT ready on http://%s:%s (data in %s)", settings.host, settings.port, settings.data_dir)
        if not settings.api_keys:
            log.warning("GXFT_API_KEYS is not set: this server is open, and takes any key. It answers only "
                        "requests that name it %s; set GXFT_API_KEYS before it serves a network.",
                        "by a loopback name or " + ", ".join(settings.public_hosts) if settings.public_hosts
                        else "by a loopback name (localhost, 127.0.0.1, [::1])")
        try:
            yield
        finally:
            housekeeping.cancel()
            delivering.cancel()
            engine.close()
            await validator.close()
            db.close()

    return Starlette(
        # Starlette tries routes in order: the ones clients poll (job retrieve and events) come first.
        routes=[*fine_tuning.routes, *files.routes, *uploads.routes, *internal.routes, *completions.routes,
                *stored_completions.routes, *responses_api.routes, *embeddings.routes, *graders.routes,
                *models.routes, *webhooks.routes, *checkpoint_permissions.routes,
                *custom_models.routes, *datasets.routes, Route("/healthz", healthz),
                Route("/openapi.json", openapi_json), *dashboard.routes],
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(AuthMiddleware, api_keys=settings.api_keys, worker_token=settings.worker_token,
                       public_hosts=settings.public_hosts, admin_keys=settings.admin_keys),
        ],
        exception_handlers={
            APIError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
