"""Cut OpenAI's OpenAPI document to the operations GXFT serves, for compat_tests/openai_document/.

    python scripts/cut_openai_document.py openapi.json \
        compat_tests/openai_document/openai-openapi-2.3.0-served-operations.json

The input is `openapi.json` of github.com/openai/openai-openapi (MIT licence). The paths kept are those
of SERVED; every component stays, as OpenAI wrote it, so that each reference still resolves. Nothing
else is changed, so a reader can check the cut against the original.
"""

import json
import sys
from pathlib import Path

SERVED = {
    "listFiles", "createFile", "deleteFile", "retrieveFile", "downloadFile",
    "createUpload", "addUploadPart", "completeUpload", "cancelUpload",
    "createFineTuningJob", "listPaginatedFineTuningJobs", "retrieveFineTuningJob", "cancelFineTuningJob",
    "pauseFineTuningJob", "resumeFineTuningJob", "listFineTuningEvents", "listFineTuningJobCheckpoints",
    "listFineTuningCheckpointPermissions", "createFineTuningCheckpointPermission",
    "deleteFineTuningCheckpointPermission",
    "listModels", "retrieveModel", "deleteModel",
    "createChatCompletion", "createCompletion",
    "listChatCompletions", "getChatCompletion", "updateChatCompletion", "deleteChatCompletion",
    "getChatCompletionMessages",
    "createResponse", "getResponse", "deleteResponse", "cancelResponse", "listInputItems",
    "runGrader", "validateGrader",
}


def cut(document: dict) -> dict:
    paths = {}
    for path, item in document["paths"].items():
        operations = {method: operation for method, operation in item.items()
                      if isinstance(operation, dict) and operation.get("operationId") in SERVED}
        if operations:
            paths[path] = operations
    found = {operation["operationId"] for item in paths.values() for operation in item.values()}
    if found != SERVED:
        raise SystemExit(f"not in the document: {sorted(SERVED - found)}")
    return {key: paths if key == "paths" else value for key, value in document.items()
            if key not in ("webhooks", "x-oaiMeta")}


def main() -> int:
    source, target = map(Path, sys.argv[1:3])
    Path(target).write_text(json.dumps(cut(json.loads(source.read_text())), indent=1, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
