"""Webhook endpoints of each project, and the outbox of their deliveries."""

import msgspec

from storage.database import Database
from storage.records import Table


class WebhookEndpointRecord(msgspec.Struct, kw_only=True):
    id: str
    project: str
    name: str
    url: str
    event_types: list[str]
    signing_secret: str
    previous_secret: str | None = None  # still signs, beside the new one, until previous_secret_until
    previous_secret_until: int | None = None
    created_at: int
    updated_at: int


class DeliveryRecord(msgspec.Struct, kw_only=True):
    id: str  # the `webhook-id` header, the same on every attempt
    endpoint_id: str
    body: str  # sent as it is on every attempt
    created_at: int
    attempts: int = 0
    next_attempt_at: float
    last_status: int | None = None  # the endpoint's last answer; None before one, or when none came


ENDPOINTS = Table("webhook_endpoints", WebhookEndpointRecord, json_columns=frozenset({"event_types"}))
DELIVERIES = Table("webhook_deliveries", DeliveryRecord)


class WebhookRepository:
    def __init__(self, db: Database):
        self.db = db

    # Endpoints

    def insert_endpoint(self, record: WebhookEndpointRecord) -> None:
        ENDPOINTS.insert(self.db, record)

    def endpoint(self, project: str, endpoint_id: str) -> WebhookEndpointRecord | None:
        return ENDPOINTS.one(self.db, "WHERE id = ? AND project = ? AND deleted = 0", (endpoint_id, project))

    def live_endpoint(self, endpoint_id: str) -> WebhookEndpointRecord | None:
        """The endpoint, whatever its project (for the sender)."""
        return ENDPOINTS.one(self.db, "WHERE id = ? AND deleted = 0", (endpoint_id,))

    def subscribed(self, project: str, event_type: str) -> list[WebhookEndpointRecord]:
        return ENDPOINTS.all(
            self.db, "WHERE project = ? AND deleted = 0 AND EXISTS "
            "(SELECT 1 FROM json_each(webhook_endpoints.event_types) WHERE value = ?) ORDER BY seq",
            (project, event_type))

    def cursor_seq(self, project: str, endpoint_id: str) -> int | None:
        row = self.db.one("SELECT seq FROM webhook_endpoints WHERE id = ? AND project = ?", (endpoint_id, project))
        return row["seq"] if row else None

    def endpoint_page(self, project: str, after_seq: int | None, limit: int) -> tuple[list[WebhookEndpointRecord],
                                                                                      bool]:
        return ENDPOINTS.page(self.db, "project = ? AND deleted = 0", [project], after_seq, limit)

    def update_endpoint(self, endpoint_id: str, **changes: object) -> None:
        row = {name: ENDPOINTS.value(name, value) for name, value in changes.items()}
        assignments = ", ".join(f"{name} = :{name}" for name in row)
        self.db.execute(f"UPDATE webhook_endpoints SET {assignments} WHERE id = :endpoint_id",
                        {**row, "endpoint_id": endpoint_id})

    def delete_endpoint(self, endpoint_id: str) -> None:
        """The endpoint goes, and what was still to be delivered to it with it."""
        with self.db.transaction():
            self.db.execute("UPDATE webhook_endpoints SET deleted = 1 WHERE id = ?", (endpoint_id,))
            self.db.execute("UPDATE webhook_deliveries SET outcome = 'endpoint deleted' "
                            "WHERE endpoint_id = ? AND outcome IS NULL", (endpoint_id,))

    # Deliveries

    def add_delivery(self, record: DeliveryRecord) -> None:
        DELIVERIES.insert(self.db, record)

    def due(self, now: float, limit: int) -> list[DeliveryRecord]:
        return DELIVERIES.all(self.db, "WHERE outcome IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at "
                              "LIMIT ?", (now, limit))

    def attempted(self, delivery_id: str, status: int | None, next_attempt_at: float | None,
                  outcome: str | None) -> None:
        """One attempt made: either finished (`outcome`) or to be tried again at `next_attempt_at`."""
        self.db.execute(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, outcome = ?, "
            "next_attempt_at = coalesce(?, next_attempt_at) WHERE id = ?",
            (status, outcome, next_attempt_at, delivery_id))
