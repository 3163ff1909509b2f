"""GXFT against OpenAI's own OpenAPI document (`openai_document/`, version 2.3.0, MIT licence, cut to the
operations GXFT serves): every operation there is served here, and every field it documents for a
request body or query string is a field GXFT decodes, so a client sending one is never told it is unknown."""

import json
import re
from typing import Any

import pytest

from compat_tests.openai_deviations import OPENAI_DOCUMENT
from server.app import create_app
from server.config import Settings
from server.openapi import openapi_document


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _properties(document: dict[str, Any], schema: dict[str, Any]) -> set[str]:
    schema = _resolve(document, schema)
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= _properties(document, part)
    return names


def _fields(document: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """Query parameters and body fields; a form's `expires_after[anchor]` is the field `expires_after`."""
    names = {parameter["name"] for parameter in operation.get("parameters", []) if parameter.get("in") == "query"}
    for media in operation.get("requestBody", {}).get("content", {}).values():
        names |= _properties(document, media["schema"])
    return {name.split("[", 1)[0] for name in names}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)  # OpenAI says {fine_tuning_job_id} where GXFT says {job_id}


def _operations(document: dict[str, Any], prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(_shape(prefix + path), method): operation
            for path, item in document["paths"].items() for method, operation in item.items()}


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    ours = openapi_document(create_app(Settings(data_dir=tmp_path_factory.mktemp("doc"))).routes, "GXFT", "test")
    return json.loads(OPENAI_DOCUMENT.read_text()), ours


def test_every_operation_openai_documents_is_served(documents):
    theirs, ours = documents
    assert set(_operations(theirs, "/v1")) - set(_operations(ours, "")) == set()


def test_every_field_openai_documents_is_accepted(documents):
    theirs, ours = documents
    served = _operations(ours, "")
    missing = {
        f"{method.upper()} {path}": sorted(_fields(theirs, operation) - _fields(ours, served[path, method]))
        for (path, method), operation in _operations(theirs, "/v1").items()
    }
    assert {operation: names for operation, names in missing.items() if names} == {}
