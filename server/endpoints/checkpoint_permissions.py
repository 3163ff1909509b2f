"""`/v1/fine_tuning/checkpoints/{checkpoint}/permissions`: share a checkpoint with other projects (an admin
key's operations; server/auth.py lets no project key through). Checkpoint names hold colons and slashes."""

from starlette.requests import Request
from starlette.routing import Route

from server.checkpoint_permissions import permission_object
from server.decoding import decode_json, decode_query
from server.openapi import operation
from server.pagination import list_page
from server.protocol import (
    CheckpointPermission,
    CheckpointPermissionListQuery,
    CreateCheckpointPermissionRequest,
    DeletedObject,
    ListPage,
)
from server.responses import MsgspecResponse
from server.services import services


def _checkpoint(request: Request) -> str:
    return request.path_params["fine_tuned_model_checkpoint"]


@operation("Share a checkpoint with projects", body=CreateCheckpointPermissionRequest,
           response=ListPage[CheckpointPermission])
async def create_permissions(request: Request) -> MsgspecResponse:
    body = await decode_json(request, CreateCheckpointPermissionRequest)
    records = services(request).checkpoint_permissions.grant(_checkpoint(request), body.project_ids)
    return MsgspecResponse(list_page([permission_object(r) for r in records], [r.id for r in records], False))


@operation("List a checkpoint's permissions", query=CheckpointPermissionListQuery,
           response=ListPage[CheckpointPermission])
async def list_permissions(request: Request) -> MsgspecResponse:
    query = decode_query(request, CheckpointPermissionListQuery)
    return MsgspecResponse(services(request).checkpoint_permissions.page(_checkpoint(request), query))


@operation("Revoke a checkpoint permission", response=DeletedObject)
async def delete_permission(request: Request) -> MsgspecResponse:
    permission_id = request.path_params["permission_id"]
    services(request).checkpoint_permissions.revoke(_checkpoint(request), permission_id)
    return MsgspecResponse(DeletedObject(id=permission_id, object="checkpoint.permission", deleted=True))


PERMISSIONS_PATH = "/v1/fine_tuning/checkpoints/{fine_tuned_model_checkpoint:path}/permissions"
routes = [
    Route(PERMISSIONS_PATH, create_permissions, methods=["POST"]),
    Route(PERMISSIONS_PATH, list_permissions, methods=["GET"]),
    Route(PERMISSIONS_PATH + "/{permission_id}", delete_permission, methods=["DELETE"]),
]
