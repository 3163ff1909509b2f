"""What the endpoints share: settings, storage and background processors, built once per app."""

from dataclasses import dataclass

from starlette.requests import Request

from server.config import Settings
from server.file_processing import FileProcessor
from storage.blobs import BlobStore
from storage.database import Database
from storage.files import FileRepository


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    files: FileRepository
    file_processor: FileProcessor


def services(request: Request) -> Services:
    return request.app.state.services


def project(request: Request) -> str:
    return request.state.project
