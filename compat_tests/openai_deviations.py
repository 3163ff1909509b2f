"""OpenAI's OpenAPI document (`openai_document/`, 2.3.0) as the conformance run checks GXFT against it: the
document as OpenAI published it, with each place where OpenAI's own API answers differently from it (and GXFT
answers as that API does) changed to say so. Each change is listed here with its reason; nothing else of
the document is touched, so every other answer must be exactly what it says."""

import json
from pathlib import Path
from typing import Any

OPENAI_DOCUMENT = Path(__file__).with_name("openai_document") / "openai-openapi-2.3.0-served-operations.json"
ERROR_RESPONSE = {"description": "An error, in OpenAI's envelope.",
                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
NULLABLE_FILE_FIELDS = ("expires_at", "status_details")

DEVIATIONS = {
    "4XX answers": "The document gives most operations no error answer at all, yet OpenAI's API answers a bad "
                   "request, a missing object or a bad key with a 4xx in its error envelope. Every operation "
                   "gets a `4XX` answer whose body is the document's own ErrorResponse: the status-code check "
                   "still fails any 5xx, any 2xx or 3xx the document does not list, and an error body off "
                   "the envelope.",
    "null file fields": "OpenAIFile's `expires_at` and `status_details` are an integer and a string, but "
                        "OpenAI's files carry `null` in both when there is no expiry and nothing to say, "
                        "as the SDK's FileObject (Optional) expects.",
    "paused jobs": "FineTuningJob's `status` enum lacks `paused`, yet the document's own pauseFineTuningJob "
                   "answers a paused job, as OpenAI's API does.",
    "evals files": "OpenAIFile's `purpose` enum lacks `evals`, yet `evals` is a purpose the document's own "
                   "createFile accepts and OpenAI's files then carry.",
    "file content type": "`GET /files/{file_id}/content` is documented as JSON (a string); OpenAI sends a "
                         "file's bytes as they are, `application/octet-stream` (`text/csv` for a results "
                         "file), which is what the SDK's `files.content` reads.",
}


def document_with_deviations() -> dict[str, Any]:
    document = json.loads(OPENAI_DOCUMENT.read_text())
    for item in document["paths"].values():
        for operation in item.values():
            operation["responses"].setdefault("4XX", ERROR_RESPONSE)
    file_properties = document["components"]["schemas"]["OpenAIFile"]["properties"]
    for name in NULLABLE_FILE_FIELDS:
        file_properties[name] = {"anyOf": [file_properties[name], {"type": "null"}]}
    file_properties["purpose"]["enum"].append("evals")
    document["components"]["schemas"]["FineTuningJob"]["properties"]["status"]["enum"].append("paused")
    content = document["paths"]["/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    for media_type in ("application/octet-stream", "text/csv"):
        content[media_type] = {"schema": {"type": "string", "format": "binary"}}
    return document


def write_document_with_deviations(folder: Path) -> Path:
    path = folder / OPENAI_DOCUMENT.name
    path.write_text(json.dumps(document_with_deviations()))
    return path
