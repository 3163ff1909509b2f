"""Wire objects of `/v1/embeddings`, in OpenAI's shapes.

`input` is a string or a list, of strings or of token arrays as OpenAI takes them; token arrays are
refused (server/embeddings.py says why), so it is typed loosely here and checked there.
"""

from typing import Annotated, Any, Literal

import msgspec


class EmbeddingRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    input: str | list[Any]
    model: Annotated[str, msgspec.Meta(examples=["sentence-transformers/all-MiniLM-L6-v2"])]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, msgspec.Meta(ge=1)] | None = None
    user: str | None = None  # accepted and ignored, as on chat


class Embedding(msgspec.Struct, kw_only=True):
    index: int
    embedding: list[float] | str  # a string: the float32 values, little-endian, in base64
    object: Literal["embedding"] = "embedding"


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: Literal["list"] = "list"
