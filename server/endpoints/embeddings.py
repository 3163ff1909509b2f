"""`/v1/embeddings`: OpenAI's embeddings, from the server's embedding model (server/embeddings.py)."""

from starlette.requests import Request
from starlette.routing import Route

from server.decoding import decode_json
from server.embeddings_protocol import EmbeddingRequest, EmbeddingResponse
from server.openapi import operation
from server.responses import MsgspecResponse
from server.services import services


@operation("Create embeddings", body=EmbeddingRequest, response=EmbeddingResponse)
async def create_embeddings(request: Request) -> MsgspecResponse:
    body = await decode_json(request, EmbeddingRequest)
    return MsgspecResponse(await services(request).embeddings.create(body))


routes = [Route("/v1/embeddings", create_embeddings, methods=["POST"])]
