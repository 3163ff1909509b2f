"""OpenAI's OpenAPI document (`openai_document/`, 2.3.0) as the conformance run checks GXFT against it: the
document as OpenAI published it, with each place where OpenAI's own API answers differently from it (and GXFT
answers as that API does) changed to say so, each with its reason below. Nothing else of the document is
touched, so every other answer must be exactly what it says. docs/api-differences.md lists the same."""

import json
from pathlib import Path
from typing import Any

OPENAI_DOCUMENT = Path(__file__).with_name("openai_document") / "openai-openapi-2.3.0-served-operations.json"
ERROR_RESPONSE = {"description": "An error, in OpenAI's envelope.",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def document_with_deviations() -> dict[str, Any]:
    document = json.loads(OPENAI_DOCUMENT.read_text())
    schemas = document["components"]["schemas"]
    # The document gives most operations no error answer at all, yet OpenAI's API answers a bad request, a
    # missing object or a bad key with a 4xx in its error envelope. A `4XX` answer whose body is the
    # document's own ErrorResponse: the status-code check still fails any 5xx, any 2xx or 3xx the document
    # does not list, and an error body off the envelope.
    for item in document["paths"].values():
        for operation in item.values():
            operation["responses"].setdefault("4XX", ERROR_RESPONSE)
    # A few operations document their 404 as a bare `Error` object; OpenAI's API answers it in the envelope, as
    # every other error.
    for item in document["paths"].values():
        for operation in item.values():
            for answer in operation["responses"].values():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                if schema.get("$ref") == "#/components/schemas/Error":
                    schema["$ref"] = "#/components/schemas/ErrorResponse"
    # OpenAIFile's `expires_at` and `status_details` are an integer and a string, but OpenAI's files carry
    # null in both when there is no expiry and nothing to say, as the SDK's FileObject (Optional) expects.
    file_properties = schemas["OpenAIFile"]["properties"]
    for name in ("expires_at", "status_details"):
        file_properties[name] = {"anyOf": [file_properties[name], {"type": "null"}]}
    # Its `purpose` lacks `evals`, a purpose the document's own createFile accepts.
    file_properties["purpose"]["enum"].append("evals")
    # FineTuningJob's `status` lacks `paused`, the answer of the document's own pauseFineTuningJob.
    schemas["FineTuningJob"]["properties"]["status"]["enum"].append("paused")
    # A file's content is documented as JSON (a string); OpenAI sends the bytes as they are,
    # application/octet-stream (text/csv for a results file), which is what the SDK's `files.content` reads.
    content = document["paths"]["/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    for media_type in ("application/octet-stream", "text/csv"):
        content[media_type] = {"schema": {"type": "string", "format": "binary"}}
    # A list's `first_id` and `last_id` are strings, but an empty page has no first or last object: OpenAI answers
    # null there.
    for schema in schemas.values():
        for name in ("first_id", "last_id"):
            if schema.get("properties", {}).get(name, {}).get("type") == "string":
                schema["properties"][name] = {"anyOf": [schema["properties"][name], {"type": "null"}]}
    # A stored completion's messages are the request's, each with its own role (the document's own example answers
    # "user"); the schema reuses the answer message's, whose role can only be "assistant".
    stored_message = schemas["ChatCompletionMessageList"]["properties"]["data"]["items"]["allOf"]
    stored_message[0] = {**schemas["ChatCompletionResponseMessage"], "properties": {
        **schemas["ChatCompletionResponseMessage"]["properties"],
        "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool", "function"]}}}
    return document


def write_document_with_deviations(folder: Path) -> Path:
    path = folder / OPENAI_DOCUMENT.name
    path.write_text(json.dumps(document_with_deviations()))
    return path
