"""Random object ids in OpenAI's shapes (`file-…`, `ftjob-…`, …)."""

import secrets
import string

_BASE62 = string.ascii_letters + string.digits


def random_base62(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + random_base62(length)
