"""The embedding model behind `/v1/embeddings` and the cosine grader: a sentence-transformers folder (a
transformers encoder with its pooling setting), loaded on first use, run on the caller's thread.

Pooling is read from the folder's `1_Pooling/config.json` (mean, CLS or last token; mean where there is
none), and every vector is scaled to length 1, as OpenAI's are, so a dot product is the cosine.
"""

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import AutoModel, AutoTokenizer

from modeling.loading import pick_device

Pooling = Literal["mean", "cls", "last"]
BATCH_TEXTS = 32  # texts per forward pass: padding grows with the batch's longest text


@dataclass(frozen=True)
class Embedded:
    vectors: list[list[float]]
    tokens: int


class InputTooLong(ValueError):
    def __init__(self, index: int, tokens: int, limit: int):
        super().__init__(f"input[{index}] is {tokens} tokens; this embedding model reads at most {limit}")


def _pooling(folder: Path) -> Pooling:
    config_path = folder / "1_Pooling" / "config.json"
    if not config_path.is_file():
        return "mean"
    config = json.loads(config_path.read_text())
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_lasttoken"):
        return "last"
    return "mean"


def _longest_input(folder: Path, model_config: Any) -> int:
    """sentence-transformers' `max_seq_length` where the folder says it (what the model was trained on),
    else the model's positions."""
    config_path = folder / "sentence_bert_config.json"
    if config_path.is_file() and (length := json.loads(config_path.read_text()).get("max_seq_length")):
        return int(length)
    return int(model_config.max_position_embeddings)


class EmbeddingModel:
    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()  # one forward pass at a time; callers are threads of the server
        self._loaded: tuple[Any, Any, torch.device, Pooling, int] | None = None

    def _load(self) -> tuple[Any, Any, torch.device, Pooling, int]:
        if self._loaded is None:
            device = pick_device()
            tokenizer = AutoTokenizer.from_pretrained(self.folder)
            tokenizer.padding_side = "right"  # where `_pool` finds a row's last token
            model = AutoModel.from_pretrained(self.folder).to(device).eval()
            self._loaded = (tokenizer, model, device, _pooling(self.folder), _longest_input(self.folder, model.config))
        return self._loaded

    @property
    def dimensions(self) -> int:
        """The vectors' length (loads the model: call it on a thread)."""
        with self._lock:
            return int(self._load()[1].config.hidden_size)

    def embed(self, texts: list[str]) -> Embedded:
        """Raises InputTooLong for the first text past the model's length (OpenAI refuses, never cuts)."""
        with self._lock:
            tokenizer, model, device, pooling, limit = self._load()
            lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]]
            for index, length in enumerate(lengths):
                if length > limit:
                    raise InputTooLong(index, length, limit)
            vectors: list[list[float]] = []
            for start in range(0, len(texts), BATCH_TEXTS):
                batch = tokenizer(texts[start : start + BATCH_TEXTS], padding=True, return_tensors="pt").to(device)
                with torch.inference_mode():
                    hidden = model(**batch).last_hidden_state
                vectors.extend(_pool(hidden, batch["attention_mask"], pooling).tolist())
            return Embedded(vectors, sum(lengths))


def _pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    if pooling == "cls":
        pooled = hidden[:, 0]
    elif pooling == "last":  # the last real token of each row (padding on the right)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), mask.sum(dim=1) - 1]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled.float(), dim=-1)
