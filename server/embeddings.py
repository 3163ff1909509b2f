"""`/v1/embeddings` and the cosine grader's vectors, from the one embedding model a server may be given
(GXFT_EMBEDDING_MODEL, a sentence-transformers folder; server/serving/embedder.py runs it).

Token arrays, which OpenAI takes as `input`, are refused: they are ids of OpenAI's tokenizer, which mean
other words to this model. LangChain's `OpenAIEmbeddings` sends them unless told
`check_embedding_ctx_length=False`, which the refusal says.
"""

import base64
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread

from grading.model_graders import ModelServerError
from server.embeddings_protocol import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from server.errors import APIError, invalid_request, model_not_found

if TYPE_CHECKING:
    from server.serving.embedder import EmbeddingModel

MAX_INPUTS = 2048  # OpenAI's limit per request
# Under `--profile emulator` OpenAI's embedding models answer too, played by the server's own model.
OPENAI_EMBEDDING_MODELS = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")


def _texts(value: str | list) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise invalid_request("input must hold at least one text.", param="input")
    if len(texts) > MAX_INPUTS:
        raise invalid_request(f"input holds {len(texts)} texts; at most {MAX_INPUTS} go in one request.",
                              param="input")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise invalid_request(
                f"input[{index}] is not a string. Token arrays are ids of OpenAI's tokenizer, which mean nothing "
                "to this server's embedding model: send the text (LangChain's OpenAIEmbeddings: "
                "check_embedding_ctx_length=False).", param="input")
        if not text:
            raise invalid_request(f"input[{index}] is empty; each input must hold some text.", param="input")
    return texts


def _base64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class Embeddings:
    def __init__(self, folder: Path | None, name: str, aliases: tuple[str, ...] = ()):
        self.folder = folder
        self.name = name
        self.aliases = aliases
        self._model: EmbeddingModel | None = None
        self._creating = threading.Lock()  # first use may come from the event loop and a grader's thread at once

    @property
    def available(self) -> bool:
        return self.folder is not None

    def _loaded(self) -> "EmbeddingModel":
        if self.folder is None:
            raise ModelServerError("this server has no embedding model (set GXFT_EMBEDDING_MODEL)")
        with self._creating:
            if self._model is None:
                from server.serving.embedder import EmbeddingModel  # imports torch, on first use only

                self._model = EmbeddingModel(self.folder)
            return self._model

    def vectors(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors of `texts`, for a grader's thread (an `Embedder`, grading/run.py)."""
        from server.serving.embedder import InputTooLong

        try:
            return self._loaded().embed(texts).vectors
        except InputTooLong as exc:
            raise ModelServerError(str(exc)) from None

    async def create(self, request: EmbeddingRequest) -> EmbeddingResponse:
        if self.folder is None:
            raise APIError(404, "This server has no embedding model: start it with GXFT_EMBEDDING_MODEL set to a "
                           "sentence-transformers folder (docs/serving.md).", param="model", code="model_not_found")
        if request.model != self.name and request.model not in self.aliases:
            raise model_not_found(request.model, [self.name, *self.aliases])
        texts = _texts(request.input)
        model = self._loaded()
        if request.dimensions is not None:  # checked before any text is embedded
            width = await anyio.to_thread.run_sync(lambda: model.dimensions)
            if request.dimensions != width:
                raise invalid_request(f"{request.model} gives vectors of {width} dimensions and cannot shorten "
                                      f"them; leave dimensions out or send {width}.", param="dimensions")
        from server.serving.embedder import InputTooLong

        try:
            embedded = await anyio.to_thread.run_sync(model.embed, texts)
        except InputTooLong as exc:
            raise invalid_request(f"{exc}.", param="input") from None
        encode = _base64 if request.encoding_format == "base64" else list
        return EmbeddingResponse(
            data=[Embedding(index=index, embedding=encode(vector)) for index, vector in enumerate(embedded.vectors)],
            model=request.model, usage=EmbeddingUsage(prompt_tokens=embedded.tokens, total_tokens=embedded.tokens))
