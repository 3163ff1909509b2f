"""`/v1/datasets`: Nebius's datasets API (tables with column schemas, in folders, uploaded in parts), which
GXFT does not have. Its two ways in answer what to use instead, rather than an unknown-path 404."""

from starlette.requests import Request
from starlette.routing import Route

from server.errors import APIError
from server.openapi import operation
from server.responses import MsgspecResponse


@operation("Create a dataset (refused: see the message)")
async def refuse_dataset(request: Request) -> MsgspecResponse:
    raise APIError(
        404, "GXFT has no datasets API (Nebius's /v1/datasets): fine-tuning data is a JSONL file, uploaded with "
        "POST /v1/files, or in parts with OpenAI's Uploads API (POST /v1/uploads), and named in the job's "
        "training_file.", code="unsupported_endpoint",
    )


routes = [
    Route("/v1/datasets", refuse_dataset, methods=["POST"]),
    Route("/v1/datasets/uploads", refuse_dataset, methods=["POST"]),
]
