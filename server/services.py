"""What the endpoints share: settings, storage and the domain objects, built once per app (server/app.py)."""

from dataclasses import dataclass

from starlette.requests import Request

from server.base_models import BaseModelRegistry
from server.checkpoint_permissions import CheckpointPermissions
from server.config import Settings
from server.custom_models import CustomModels
from server.embeddings import Embeddings
from server.files.store import FileStore
from server.files.uploads import Uploads
from server.files.validation import FileValidator
from server.graders import Graders
from server.jobs.admission import JobAdmission
from server.jobs.results import JobResults
from server.jobs.transitions import JobTransitions
from server.model_catalog import ModelCatalog
from server.responses_api.store import StoredResponses
from server.serving.engine import InferenceEngine
from server.stored_completions import StoredCompletions
from server.webhooks.sender import WebhookSender
from server.webhooks.subscriptions import WebhookSubscriptions
from server.wire_cache import WireCache
from server.worker_roster import WorkerRoster
from storage.jobs import JobRepository


@dataclass
class Services:
    settings: Settings
    files: FileStore
    uploads: Uploads
    file_validator: FileValidator
    jobs: JobRepository
    registry: BaseModelRegistry
    admission: JobAdmission
    transitions: JobTransitions
    results: JobResults
    catalog: ModelCatalog
    custom_models: CustomModels
    engine: InferenceEngine
    workers: WorkerRoster
    wire_cache: WireCache
    webhooks: WebhookSubscriptions
    webhook_sender: WebhookSender
    checkpoint_permissions: CheckpointPermissions
    stored_completions: StoredCompletions
    stored_responses: StoredResponses
    graders: Graders
    embeddings: Embeddings


def services(request: Request) -> Services:
    return request.app.state.services


def project(request: Request) -> str:
    return request.state.project
