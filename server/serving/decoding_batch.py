"""Rows decoding together on one loaded model and sharing one KV cache, which rows join and leave
between steps: continuous batching, read top to bottom.

    join:  left-pad the newcomers' tokens → prefill them as a batch of their own → sample each one's
           first token → left-pad the shorter of the two KV caches → concatenate them on the batch axis
    step:  one decode step for every row → sample → the runner delivers the text → rows that ended
           leave: the cache drops their lines, and the leading columns no row attends any more

Each row carries its own positions (`position_ids`), and padded columns are masked out of attention,
so the padding that joining adds changes nothing a row computes: a row decodes as it would alone.
A cache whose layers are not plain full-attention tensors (sliding windows, linear attention) cannot
be padded this way; `can_take_newcomers` says so, and the runner starts a batch of their own, which
steps beside this one.
"""

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from server.serving.generation import Row
from server.serving.model_cache import LoadedModel

Step = list[tuple[Row, str]]  # each row that took a token, with the text that token released


def _pad_left(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = columns
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _paddable(cache: DynamicCache) -> bool:
    return type(cache) is DynamicCache and all(type(layer) is DynamicLayer for layer in cache.layers)


class DecodingBatch:
    def __init__(self, loaded: LoadedModel):
        self.loaded = loaded
        self.rows: list[Row] = []
        self._cache: DynamicCache | None = None
        self._mask = torch.zeros((0, 0), dtype=torch.long, device=loaded.device)  # [rows, cached columns]
        self._positions = torch.zeros((0, 1), dtype=torch.long, device=loaded.device)  # each row's last position

    @property
    def can_take_newcomers(self) -> bool:
        return self._cache is None or _paddable(self._cache)

    @torch.inference_mode()
    def join(self, newcomers: list[Row]) -> Step:
        """Prefill the newcomers (a row that was preempted brings the tokens it had generated) and take
        them into the batch; answer the first token of each."""
        sequences = [row.prompt_ids + row.generated for row in newcomers]
        width = max(len(ids) for ids in sequences)
        device = self.loaded.device
        ids = torch.full((len(newcomers), width), self.loaded.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(newcomers), width), dtype=torch.long)
        for index, sequence in enumerate(sequences):
            ids[index, width - len(sequence):] = torch.tensor(sequence)
            mask[index, width - len(sequence):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits, cache = self._forward(newcomers, ids, mask, positions, None)
        step = self._sample(newcomers, logits)
        self._take(newcomers, cache, mask, positions[:, -1:])
        return step

    @torch.inference_mode()
    def step(self) -> Step:
        """One token more for every row."""
        next_ids = torch.tensor([[row.generated[-1]] for row in self.rows], device=self.loaded.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self.rows), 1))], dim=1)
        self._positions = self._positions + 1
        logits, self._cache = self._forward(self.rows, next_ids, self._mask, self._positions, self._cache)
        return self._sample(self.rows, logits)

    def remove(self, leaving: list[Row]) -> None:
        """Drop rows: those that ended, and those preempted to make room for another project's."""
        gone = {id(row) for row in leaving}
        keep = [index for index, row in enumerate(self.rows) if id(row) not in gone]
        if len(keep) == len(self.rows):
            return
        self.rows = [self.rows[index] for index in keep]
        if not self.rows:
            self._cache, self._mask, self._positions = None, self._mask[:0, :0], self._positions[:0]
            return
        kept = torch.tensor(keep, device=self.loaded.device)
        assert self._cache is not None
        self._cache.batch_select_indices(kept)
        self._mask, self._positions = self._mask[kept], self._positions[kept]
        # The columns before the earliest one any remaining row attends are padding for all of them.
        first = int(self._mask.any(dim=0).nonzero()[0])
        if first and _paddable(self._cache):
            self._mask = self._mask[:, first:]
            for layer in self._cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]

    def _forward(self, rows: list[Row], ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                 cache: DynamicCache | None) -> tuple[torch.Tensor, DynamicCache]:
        mixed = self.loaded.set_adapters_for({row.adapter for row in rows})
        extra = {"adapter_names": [row.adapter for row in rows]} if mixed else {}
        output = self.loaded.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                                   use_cache=True, logits_to_keep=1, **extra)
        return output.logits[:, -1, :].float(), output.cache

    @staticmethod
    def _sample(rows: list[Row], logits: torch.Tensor) -> Step:
        step = []
        for index, row in enumerate(rows):
            allowed = logits[index] if row.constraint is None else row.constraint.allowed(logits[index])
            step.append((row, row.accept(row.sampler.pick(allowed, row.generated), logits[index])))
        return step

    def _take(self, newcomers: list[Row], cache: DynamicCache, mask: torch.Tensor, positions: torch.Tensor) -> None:
        if self._cache is None:
            self.rows, self._cache, self._mask, self._positions = list(newcomers), cache, mask, positions
            return
        ours, theirs = self._mask.shape[1], mask.shape[1]
        width = max(ours, theirs)
        for layer, joining in zip(self._cache.layers, cache.layers, strict=True):
            layer.keys = torch.cat([_pad_left(layer.keys, width - ours, 2), _pad_left(joining.keys, width - theirs, 2)])
            layer.values = torch.cat([_pad_left(layer.values, width - ours, 2),
                                      _pad_left(joining.values, width - theirs, 2)])
        self._mask = torch.cat([_pad_left(self._mask, width - ours, 1), _pad_left(mask, width - theirs, 1)])
        self._positions = torch.cat([self._positions, positions])
        self.rows.extend(newcomers)
