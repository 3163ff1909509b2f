"""`GET /openapi.json`: the OpenAPI 3.1 document of `/v1`, generated from the msgspec types the endpoints use.

Each endpoint declares its wire types with `@operation(...)`; the document is built from those
declarations and the routes, so it cannot drift from what the server decodes and encodes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from contract.error_envelope import ErrorResponse

Handler = TypeVar("Handler", bound=Callable[..., Any])
REF_TEMPLATE = "#/components/schemas/{name}"


@dataclass(frozen=True)
class Operation:
    summary: str
    response: Any = None  # the JSON answer's type
    body: Any = None  # the JSON request body's type
    body_required: bool = True
    query: type | None = None  # a Struct whose fields are the query parameters
    form: type | None = None  # a Struct whose fields are the multipart/form-data parts (bytes: a file)
    download: tuple[str, ...] = ()  # the media types of a 200 that is a file's bytes
    streams: bool = False  # `"stream": true` answers with server-sent events
    server_errors: tuple[int, ...] = ()  # 5xx answers that are part of the contract (507: disk full)


def operation(summary: str, **details: Any) -> Callable[[Handler], Handler]:
    def declare(handler: Handler) -> Handler:
        handler.operation = Operation(summary, **details)  # type: ignore[attr-defined]
        return handler

    return declare


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null."""
    options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
    if len(options) == 1 and "anyOf" in schema:
        return {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")}, **options[0]}
    return {k: v for k, v in schema.items() if k != "default" or v is not None}


def _query_parameters(object_schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(object_schema.get("required", []))
    parameters = []
    for name, schema in object_schema["properties"].items():
        parameter = {"name": name, "in": "query", "required": name in required, "schema": _without_null(schema)}
        if any(option.get("type") == "object" for option in schema.get("anyOf", [schema])):
            parameter.update(style="deepObject", explode=True)
        parameters.append(parameter)
    return parameters


def _form_schema(object_schema: dict[str, Any]) -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    properties = {
        name: binary if schema.get("contentEncoding") == "base64" else _without_null(schema)
        for name, schema in object_schema["properties"].items()
    }
    return {**object_schema, "properties": properties}


def _path_template(route: Route) -> str:
    """Starlette's `{model:path}` is OpenAPI's `{model}`."""
    path = route.path
    for name in route.param_convertors:
        path = path.replace(f"{{{name}:path}}", f"{{{name}}}")
    return path


def openapi_document(routes: list[BaseRoute], title: str, version: str) -> dict[str, Any]:
    operations = [
        (route, method, route.endpoint.operation)
        for route in routes
        if isinstance(route, Route) and hasattr(route.endpoint, "operation")
        for method in sorted(route.methods or ()) if method != "HEAD"
    ]
    types: list[Any] = [ErrorResponse]
    for _, _, op in operations:
        types += [t for t in (op.response, op.body, op.query, op.form) if t is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    error = {"description": "An error, in OpenAI's error envelope",
             "content": {"application/json": {"schema": schema_of[id(ErrorResponse)]}}}

    def object_schema(struct: type) -> dict[str, Any]:
        return components[schema_of[id(struct)]["$ref"].rsplit("/", 1)[1]]

    paths: dict[str, dict[str, Any]] = {}
    for route, method, op in operations:
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in route.param_convertors
        ]
        if op.query is not None:
            parameters += _query_parameters(object_schema(op.query))
        content = {media: {"schema": {"type": "string", "format": "binary"}} for media in op.download}
        if op.response is not None:
            content["application/json"] = {"schema": schema_of[id(op.response)]}
        if op.streams:
            content["text/event-stream"] = {"schema": {"type": "string"}}
        ok = {"description": "OK", "content": content}
        document: dict[str, Any] = {
            "summary": op.summary,
            "operationId": route.endpoint.__name__,
            "parameters": parameters,
            "responses": {"200": ok, "4XX": error, **{str(status): error for status in op.server_errors}},
        }
        if op.body is not None:
            document["requestBody"] = {
                "required": op.body_required,
                "content": {"application/json": {"schema": schema_of[id(op.body)]}},
            }
        if op.form is not None:
            document["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": _form_schema(object_schema(op.form))}},
            }
        paths.setdefault(_path_template(route), {})[method.lower()] = document
    for _, _, op in operations:  # spelled out as parameters and form fields, not referenced
        for struct in (op.query, op.form):
            if struct is not None:
                components.pop(struct.__name__, None)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(request: Request) -> Response:
    app = request.app
    if getattr(app.state, "openapi", None) is None:
        app.state.openapi = msgspec.json.encode(openapi_document(app.routes, "GXFT", version("gxft")))
    return Response(app.state.openapi, media_type="application/json")
