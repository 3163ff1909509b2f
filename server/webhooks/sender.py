"""Delivering the outbox: each due delivery is posted, signed afresh at each attempt, until its endpoint
answers 2xx. A failed attempt (any other status, or no answer in time) is tried again after a delay that
doubles from `first_retry_seconds` up to an hour, for 72 hours, as OpenAI retries; a restart picks up
where the outbox stands, so a delivery may arrive twice (its `webhook-id` tells a receiver), never not at all.
"""

import asyncio
import logging
import time

import httpx2

from contract.ids import new_id
from server.webhooks.outbox import event_body
from server.webhooks.protocol import WebhookEventType
from server.webhooks.signing import signed_headers
from storage.webhooks import DeliveryRecord, WebhookEndpointRecord, WebhookRepository

log = logging.getLogger("gxft.webhooks")

POLL_SECONDS = 0.25
ATTEMPT_TIMEOUT_SECONDS = 15.0
LONGEST_DELAY_SECONDS = 3600.0
GIVE_UP_AFTER_SECONDS = 72 * 3600


class EndpointUnreachable(Exception):
    pass


class WebhookSender:
    def __init__(self, repository: WebhookRepository, first_retry_seconds: float):
        self.repository = repository
        self.first_retry_seconds = first_retry_seconds
        self._in_flight: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        async with httpx2.AsyncClient(timeout=ATTEMPT_TIMEOUT_SECONDS, follow_redirects=False) as http:
            try:
                while True:
                    try:
                        for delivery in self.repository.due(time.time(), limit=64):
                            if delivery.id not in self._in_flight:  # a slow endpoint holds up only its own
                                self._in_flight[delivery.id] = asyncio.get_running_loop().create_task(
                                    self._attempt(http, delivery))
                    except Exception:
                        log.exception("reading the webhook outbox failed")
                    await asyncio.sleep(POLL_SECONDS)
            finally:  # at shutdown: an attempt cut short is still owed, and made after the restart
                for task in list(self._in_flight.values()):
                    task.cancel()

    async def _attempt(self, http: httpx2.AsyncClient, delivery: DeliveryRecord) -> None:
        try:
            await self._deliver(http, delivery)
        except Exception:
            log.exception("webhook %s: delivering failed", delivery.id)
        finally:
            del self._in_flight[delivery.id]

    async def _deliver(self, http: httpx2.AsyncClient, delivery: DeliveryRecord) -> None:
        endpoint = self.repository.live_endpoint(delivery.endpoint_id)
        if endpoint is None:
            self.repository.attempted(delivery.id, None, None, "endpoint deleted")
            return
        try:
            status: int | None = await self._post(http, endpoint, delivery.id, delivery.body)
            failure = f"answered {status}"
        except EndpointUnreachable as unreachable:
            status, failure = None, str(unreachable)
        if status is not None and 200 <= status < 300:
            self.repository.attempted(delivery.id, status, None, "delivered")
            return
        delay = min(self.first_retry_seconds * 2 ** delivery.attempts, LONGEST_DELAY_SECONDS)
        if time.time() + delay - delivery.created_at > GIVE_UP_AFTER_SECONDS:
            log.warning("webhook %s to %s: %s; given up after %d attempts over 72 hours", delivery.id,
                        endpoint.id, failure, delivery.attempts + 1)
            self.repository.attempted(delivery.id, status, None, "given up")
            return
        log.info("webhook %s to %s: %s; trying again in %.0f s", delivery.id, endpoint.id, failure, delay)
        self.repository.attempted(delivery.id, status, time.time() + delay, None)

    async def send_test(self, endpoint: WebhookEndpointRecord, event_type: WebhookEventType) -> int:
        """A sample event, sent at once and not retried: the endpoint's status code."""
        async with httpx2.AsyncClient(timeout=ATTEMPT_TIMEOUT_SECONDS, follow_redirects=False) as http:
            return await self._post(http, endpoint, new_id("wh_"), event_body(event_type, "ftjob-webhook-test"))

    @staticmethod
    async def _post(http: httpx2.AsyncClient, endpoint: WebhookEndpointRecord, delivery_id: str, body: str) -> int:
        now = int(time.time())
        signing = [endpoint.signing_secret]
        if endpoint.previous_secret and (endpoint.previous_secret_until or 0) > now:
            signing.append(endpoint.previous_secret)
        headers = {**signed_headers(delivery_id, now, body, signing), "user-agent": "GXFT-Webhooks/1"}
        try:
            answer = await http.post(endpoint.url, content=body.encode(), headers=headers)
        except httpx2.HTTPError as error:
            raise EndpointUnreachable(f"{type(error).__name__}: {error}"[:300]) from None
        return answer.status_code
