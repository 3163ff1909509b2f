"""A project's webhook endpoints: what the `/v1/webhook_endpoints` operations create, change and delete."""

import time
from typing import cast
from urllib.parse import urlsplit

import msgspec

from contract.ids import new_id
from server.errors import invalid_request, not_found
from server.pagination import after_cursor, list_page
from server.protocol import ListPage
from server.webhooks.protocol import (
    FINE_TUNING_EVENT_TYPES,
    CreateWebhookEndpointRequest,
    UpdateWebhookEndpointRequest,
    WebhookEndpoint,
    WebhookEndpointListQuery,
    WebhookEndpointWithSecret,
    WebhookEventType,
)
from server.webhooks.signing import new_secret, secret_hint
from storage.webhooks import WebhookEndpointRecord, WebhookRepository

OLD_SECRET_SECONDS = 24 * 3600


def checked_event_types(event_types: list[str]) -> list[WebhookEventType]:
    unknown = [name for name in event_types if name not in FINE_TUNING_EVENT_TYPES]
    if unknown:
        raise invalid_request(
            f"GXFT sends the events {', '.join(FINE_TUNING_EVENT_TYPES)}; {unknown[0][:100]!r} is not one of them "
            "(OpenAI's other events belong to APIs GXFT does not serve).", param="event_types",
            code="invalid_event_type")
    return cast(list[WebhookEventType], list(dict.fromkeys(event_types)))


def checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_request(f"The url must be an http:// or https:// address with a host name, not {url[:200]!r}.",
                              param="url", code="invalid_url")
    return url


def endpoint_object(record: WebhookEndpointRecord) -> WebhookEndpoint:
    return WebhookEndpoint(id=record.id, created_at=record.created_at, updated_at=record.updated_at, name=record.name,
                           url=record.url, event_types=record.event_types,
                           signing_secret_hint=secret_hint(record.signing_secret))


def endpoint_object_with_secret(record: WebhookEndpointRecord) -> WebhookEndpointWithSecret:
    return WebhookEndpointWithSecret(**msgspec.structs.asdict(endpoint_object(record)),
                                     signing_secret=record.signing_secret)


class WebhookSubscriptions:
    def __init__(self, repository: WebhookRepository):
        self.repository = repository

    def create(self, project: str, request: CreateWebhookEndpointRequest) -> WebhookEndpointRecord:
        now = int(time.time())
        record = WebhookEndpointRecord(
            id=new_id("whe_"), project=project, name=request.name, url=checked_url(request.url),
            event_types=list(checked_event_types(request.event_types)), signing_secret=new_secret(), created_at=now,
            updated_at=now,
        )
        self.repository.insert_endpoint(record)
        return record

    def get(self, project: str, endpoint_id: str) -> WebhookEndpointRecord:
        record = self.repository.endpoint(project, endpoint_id)
        if record is None:
            raise not_found("webhook endpoint", endpoint_id, param="webhook_endpoint_id")
        return record

    def page(self, project: str, query: WebhookEndpointListQuery) -> ListPage[WebhookEndpoint]:
        after = after_cursor(query.after, lambda endpoint_id: self.repository.cursor_seq(project, endpoint_id))
        records, has_more = self.repository.endpoint_page(project, after, query.limit)
        return list_page([endpoint_object(record) for record in records], [record.id for record in records],
                         has_more)

    def update(self, project: str, endpoint_id: str, request: UpdateWebhookEndpointRequest) -> WebhookEndpointRecord:
        record = self.get(project, endpoint_id)
        changes: dict[str, object] = {}
        if request.name is not None and request.name != record.name:
            changes["name"] = request.name
        if request.url is not None and request.url != record.url:
            changes["url"] = checked_url(request.url)
        event_types = checked_event_types(request.event_types) if request.event_types is not None else None
        if event_types is not None and list(event_types) != record.event_types:
            changes["event_types"] = event_types
        if changes:  # an update that changes nothing leaves updated_at, as at OpenAI
            self.repository.update_endpoint(record.id, updated_at=int(time.time()), **changes)
        return self.get(project, endpoint_id)

    def rotate_secret(self, project: str, endpoint_id: str, keep_old: bool) -> WebhookEndpointRecord:
        record = self.get(project, endpoint_id)
        now = int(time.time())
        self.repository.update_endpoint(
            record.id, signing_secret=new_secret(), updated_at=now,
            previous_secret=record.signing_secret if keep_old else None,
            previous_secret_until=now + OLD_SECRET_SECONDS if keep_old else None,
        )
        return self.get(project, endpoint_id)

    def delete(self, project: str, endpoint_id: str) -> None:
        self.repository.delete_endpoint(self.get(project, endpoint_id).id)
