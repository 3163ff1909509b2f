"""The wire objects of OpenAI's webhook endpoints API (`/v1/webhook_endpoints`) and of the events sent."""

from typing import Annotated, Literal

import msgspec

# What GXFT sends: the ends of a fine-tuning job. OpenAI's other event types belong to APIs GXFT does not serve.
FINE_TUNING_EVENT_TYPES = ("fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled")
WebhookEventType = Literal["fine_tuning.job.succeeded", "fine_tuning.job.failed", "fine_tuning.job.cancelled"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
# Checked against FINE_TUNING_EVENT_TYPES by the subscriptions, whose message names the ones there are.
EventTypes = Annotated[list[str], msgspec.Meta(min_length=1, max_length=64)]


class CreateWebhookEndpointRequest(msgspec.Struct, forbid_unknown_fields=True):
    event_types: EventTypes
    name: Name
    url: Url


class UpdateWebhookEndpointRequest(msgspec.Struct, forbid_unknown_fields=True):
    event_types: EventTypes | None = None
    name: Name | None = None
    url: Url | None = None


class RotateSecretRequest(msgspec.Struct, forbid_unknown_fields=True):
    keep_old_secret_active_for_24_hours: bool = False


class TestWebhookEndpointRequest(msgspec.Struct, forbid_unknown_fields=True):
    event_type: str


class WebhookEndpointListQuery(msgspec.Struct, kw_only=True):
    after: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 20


class WebhookEndpoint(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    created_at: int
    updated_at: int
    name: str
    url: str
    event_types: list[str]
    signing_secret_hint: str


class WebhookEndpointWithSecret(WebhookEndpoint, kw_only=True):
    """Answered only at creation and rotation: the one time the secret is shown."""

    signing_secret: str


class WebhookEndpointTestResult(msgspec.Struct, kw_only=True):
    object: Literal["webhook_endpoint.test"] = "webhook_endpoint.test"
    webhook_endpoint_id: str
    event_type: str
    status_code: int
    success: Literal[True] = True


class WebhookEventTypeList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[str]


class WebhookEventData(msgspec.Struct):
    id: str  # the fine-tuning job's


class WebhookEvent(msgspec.Struct, kw_only=True):
    """The body of a delivery, as OpenAI sends it."""

    id: str
    object: Literal["event"] = "event"
    created_at: int
    type: WebhookEventType
    data: WebhookEventData
