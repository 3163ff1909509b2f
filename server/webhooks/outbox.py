"""Deliveries owed for a job's end, written in the same transaction as the end itself: a job that has
ended owes its webhooks, and a job that has not owes none, whenever the server stops."""

import time

import msgspec

from contract.ids import new_id
from server.webhooks.protocol import WebhookEvent, WebhookEventData, WebhookEventType
from storage.webhooks import DeliveryRecord, WebhookRepository

_encoder = msgspec.json.Encoder()


def event_body(event_type: WebhookEventType, job_id: str) -> str:
    """One event, one id (`evt_…`), sent as these same bytes to every endpoint on every attempt."""
    return _encoder.encode(WebhookEvent(id=new_id("evt_"), created_at=int(time.time()), type=event_type,
                                        data=WebhookEventData(id=job_id))).decode()


class WebhookOutbox:
    def __init__(self, repository: WebhookRepository):
        self.repository = repository

    def job_ended(self, project: str, job_id: str, event_type: WebhookEventType) -> None:
        endpoints = self.repository.subscribed(project, event_type)
        if not endpoints:
            return
        now = int(time.time())
        body = event_body(event_type, job_id)
        for endpoint in endpoints:  # each delivery has its own `webhook-id`
            self.repository.add_delivery(DeliveryRecord(id=new_id("wh_"), endpoint_id=endpoint.id, body=body,
                                                        created_at=now, next_attempt_at=now))
