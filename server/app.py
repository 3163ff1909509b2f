"""The Starlette application: routes, middleware, error handlers and start-up."""

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
from server.endpoints import files
from server.errors import APIError, handle_api_error, handle_http_exception, handle_unexpected
from server.file_processing import FileProcessor
from server.request_ids import RequestIdMiddleware
from server.services import Services
from storage.blobs import BlobStore
from storage.database import Database
from storage.files import FileRepository

log = logging.getLogger("gxft.server")


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _remove_orphan_blobs(db: Database, blobs: BlobStore) -> None:
    """Blobs whose upload committed but whose metadata never did (a crash between the two)."""
    live = {row["id"] for row in db.all("SELECT id FROM files WHERE deleted = 0")}
    for path in blobs.root.iterdir():
        if path.is_file() and path.name not in live:
            path.unlink()


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings.database_path)
        blobs = BlobStore(settings.blobs_dir)
        _remove_orphan_blobs(db, blobs)
        file_repository = FileRepository(db)
        processor = FileProcessor(file_repository, blobs, settings.min_examples)
        app.state.services = Services(
            settings=settings, db=db, blobs=blobs, files=file_repository, file_processor=processor
        )
        processor.resume_pending()
        log.info("GXFT ready on http://%s:%s (data in %s)", settings.host, settings.port, settings.data_dir)
        try:
            yield
        finally:
            await processor.close()
            db.close()

    return Starlette(
        routes=[Route("/healthz", healthz), *files.routes],
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
