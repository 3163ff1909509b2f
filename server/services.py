"""What the endpoints share: settings, storage and background processors, built once per app."""

from dataclasses import dataclass

from starlette.requests import Request

from server.config import Settings
from server.file_processing import FileProcessor
from server.job_lifecycle import JobLifecycle
from server.model_catalog import ModelCatalog
from server.model_registry import ModelRegistry
from server.serving.engine import InferenceEngine
from server.worker_roster import WorkerRoster
from storage.blobs import BlobStore
from storage.database import Database
from storage.files import FileRepository
from storage.jobs import JobRepository


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    files: FileRepository
    file_processor: FileProcessor
    jobs: JobRepository
    registry: ModelRegistry
    lifecycle: JobLifecycle
    catalog: ModelCatalog
    engine: InferenceEngine
    workers: WorkerRoster


def services(request: Request) -> Services:
    return request.app.state.services


def project(request: Request) -> str:
    return request.state.project
