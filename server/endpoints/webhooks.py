"""`/v1/webhook_endpoints`: a project's webhook endpoints (create, list, retrieve, update, delete, rotate the
signing secret, send a test), and `/v1/webhook_event_types`, as OpenAI's webhook endpoints API."""

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_json, decode_query
from server.errors import APIError
from server.openapi import operation
from server.protocol import DeletedObject, ListPage
from server.responses import MsgspecResponse
from server.services import project, services
from server.webhooks.protocol import (
    FINE_TUNING_EVENT_TYPES,
    CreateWebhookEndpointRequest,
    RotateSecretRequest,
    TestWebhookEndpointRequest,
    UpdateWebhookEndpointRequest,
    WebhookEndpoint,
    WebhookEndpointListQuery,
    WebhookEndpointTestResult,
    WebhookEndpointWithSecret,
    WebhookEventTypeList,
)
from server.webhooks.sender import EndpointUnreachable
from server.webhooks.subscriptions import checked_event_types, endpoint_object, endpoint_object_with_secret


def _endpoint_id(request: Request) -> str:
    return request.path_params["webhook_endpoint_id"]


@operation("Create a webhook endpoint", body=CreateWebhookEndpointRequest, response=WebhookEndpointWithSecret)
async def create_endpoint(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CreateWebhookEndpointRequest)
    return MsgspecResponse(endpoint_object_with_secret(services(request).webhooks.create(project(request), body)))


@operation("List webhook endpoints", query=WebhookEndpointListQuery, response=ListPage[WebhookEndpoint])
async def list_endpoints(request: Request) -> MsgspecResponse:
    query = decode_query(request, WebhookEndpointListQuery)
    return MsgspecResponse(services(request).webhooks.page(project(request), query))


@operation("Retrieve a webhook endpoint", response=WebhookEndpoint)
async def retrieve_endpoint(request: Request) -> MsgspecResponse:
    return MsgspecResponse(endpoint_object(services(request).webhooks.get(project(request), _endpoint_id(request))))


@operation("Update a webhook endpoint", body=UpdateWebhookEndpointRequest, response=WebhookEndpoint)
async def update_endpoint(request: Request) -> MsgspecResponse:
    body = await decode_json(request, UpdateWebhookEndpointRequest)
    record = services(request).webhooks.update(project(request), _endpoint_id(request), body)
    return MsgspecResponse(endpoint_object(record))


@operation("Delete a webhook endpoint", response=DeletedObject)
async def delete_endpoint(request: Request) -> MsgspecResponse:
    services(request).webhooks.delete(project(request), _endpoint_id(request))
    return MsgspecResponse(DeletedObject(id=_endpoint_id(request), object="webhook_endpoint.deleted", deleted=True))


@operation("Rotate a webhook endpoint's signing secret", body=RotateSecretRequest, body_required=False,
           response=WebhookEndpointWithSecret)
async def rotate_secret(request: Request) -> MsgspecResponse:
    body = await decode_json(request, RotateSecretRequest, empty=RotateSecretRequest())
    record = services(request).webhooks.rotate_secret(project(request), _endpoint_id(request),
                                                      body.keep_old_secret_active_for_24_hours)
    return MsgspecResponse(endpoint_object_with_secret(record))


@operation("Send a sample event to a webhook endpoint", body=TestWebhookEndpointRequest,
           response=WebhookEndpointTestResult)
async def test_endpoint(request: Request) -> MsgspecResponse:
    svc = services(request)
    body = await decode_json(request, TestWebhookEndpointRequest)
    record = svc.webhooks.get(project(request), _endpoint_id(request))
    (event_type,) = checked_event_types([body.event_type])
    try:
        status = await svc.webhook_sender.send_test(record, event_type)
    except EndpointUnreachable as unreachable:
        raise APIError(400, f"The endpoint {record.url[:200]} could not be reached: {unreachable}",
                       param="url", code="webhook_endpoint_unreachable") from None
    return MsgspecResponse(WebhookEndpointTestResult(webhook_endpoint_id=record.id, event_type=event_type,
                                                     status_code=status))


@operation("List the webhook event types", response=WebhookEventTypeList)
async def list_event_types(request: Request) -> MsgspecResponse:
    return MsgspecResponse(WebhookEventTypeList(data=list(FINE_TUNING_EVENT_TYPES)))


routes = [
    Route("/v1/webhook_endpoints", create_endpoint, methods=["POST"]),
    Route("/v1/webhook_endpoints", list_endpoints, methods=["GET"]),
    Route("/v1/webhook_endpoints/{webhook_endpoint_id}", retrieve_endpoint, methods=["GET"]),
    Route("/v1/webhook_endpoints/{webhook_endpoint_id}", update_endpoint, methods=["POST"]),
    Route("/v1/webhook_endpoints/{webhook_endpoint_id}", delete_endpoint, methods=["DELETE"]),
    Route("/v1/webhook_endpoints/{webhook_endpoint_id}/rotate_secret", rotate_secret, methods=["POST"]),
    Route("/v1/webhook_endpoints/{webhook_endpoint_id}/test", test_endpoint, methods=["POST"]),
    Route("/v1/webhook_event_types", list_event_types, methods=["GET"]),
]
