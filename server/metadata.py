"""`metadata`, as OpenAI bounds it on every object that carries it: up to 16 pairs, keys of up to 64 characters,
values of up to 512."""

from server.errors import invalid_request

MAX_METADATA_KEYS = 16


def checked_metadata(metadata: dict[str, str] | None) -> dict[str, str] | None:
    if metadata is None:
        return None
    if len(metadata) > MAX_METADATA_KEYS:
        raise invalid_request(f"metadata can hold at most {MAX_METADATA_KEYS} keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64:
            raise invalid_request(f"metadata key {key[:20]!r}… is longer than 64 characters.", param="metadata")
        if len(value) > 512:
            raise invalid_request(f"metadata value of {key[:64]!r} is longer than 512 characters.", param="metadata")
    return metadata
