"""Batched generation, one readable decode loop.

    tokenise each choice's prompt → left-pad the batch → prefill → repeat: pick each row's next
    token with its own sampling settings → stop rows at the end-of-turn token, a stop sequence or
    their token budget → drop finished rows from the KV cache → one decode step for the rest.

Rows may belong to different requests and, on a LoRA base, to different adapters: peft's
mixed-batch forward (`adapter_names`) applies each row's adapter, "__base__" for none.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from server.completions_protocol import FinishReason
from server.errors import invalid_request
from server.serving.generation_request import Generation
from server.serving.params import SamplingParams
from server.serving.text import TextAssembler

BASE_ADAPTER = "__base__"


class Sampler:
    """One request's sampling: its rows share a generator, so a seed fixes all of its choices."""

    def __init__(self, params: SamplingParams, vocab_size: int, device: torch.device):
        self.params = params
        self.generator = torch.Generator(device=device)
        if params.seed is not None:
            self.generator.manual_seed(params.seed)
        else:
            self.generator.seed()
        self.bias = None
        if params.logit_bias:
            self.bias = torch.zeros(vocab_size, device=device)
            for token, value in params.logit_bias.items():
                if token < vocab_size:
                    self.bias[token] = value

    def pick(self, logits: torch.Tensor, generated: list[int]) -> int:
        params = self.params
        if self.bias is not None:
            logits = logits + self.bias
        if generated and (params.frequency_penalty or params.presence_penalty):
            counts = torch.bincount(torch.tensor(generated, device=logits.device), minlength=logits.shape[-1])
            logits = logits - params.frequency_penalty * counts - params.presence_penalty * (counts > 0)
        if params.temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1:
            sorted_probs, order = probs.sort(descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > params.top_p  # keeps at least the top token
            probs = probs.clone().index_fill_(0, order[outside], 0)
        return int(torch.multinomial(probs, 1, generator=self.generator))


@dataclass
class Row:
    """One choice of one request."""

    owner: Generation  # the request this row answers
    choice: int
    prompt_ids: list[int]
    adapter: str
    sampler: Sampler
    text: TextAssembler
    max_new_tokens: int
    eos_ids: frozenset[int]
    generated: list[int] = field(default_factory=list)
    # Why the row ended: as OpenAI says it, or because its request was cancelled (its client went away).
    finish_reason: FinishReason | Literal["cancelled"] | None = None

    def accept(self, token: int) -> str:
        """Take the sampled token; answer the text it releases."""
        self.generated.append(token)
        if token in self.eos_ids:
            self.finish_reason = "stop"
            return self.text.finish()
        piece = self.text.add(token)
        if self.text.stopped:
            self.finish_reason = "stop"
        elif len(self.generated) >= self.max_new_tokens:
            self.finish_reason = "length"
            piece += self.text.finish()
        return piece


def end_of_turn_ids(tokenizer, model) -> frozenset[int]:
    """Where an answer ends: the tokenizer's end-of-sequence (the chat template's end-of-turn, as
    trained) and whatever the model's generation config adds."""
    ids = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return frozenset(ids)


def longest_token_bytes(tokenizer) -> int:
    """The most UTF-8 bytes any one token of the vocabulary stands for (special tokens included)."""
    return max(len(tokenizer.decode([token_id]).encode()) for token_id in range(len(tokenizer)))


def prompt_text_bytes(prompt: object) -> int:
    """The UTF-8 bytes of a prompt's text: a completion's string, or a chat's message contents."""
    if isinstance(prompt, str):
        return len(prompt.encode())
    total = 0
    for message in prompt if isinstance(prompt, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.encode())
        elif isinstance(content, list):
            total += sum(len(part["text"].encode()) for part in content
                         if isinstance(part, dict) and isinstance(part.get("text"), str))
    return total


def check_text_fits(prompt: object, longest_token: int, context_length: int, param: str) -> None:
    """Refuse, before any tokenising, text that cannot fit: no `context_length` tokens span more than
    `context_length × longest_token` bytes. Rendering and tokenising a prompt of megabytes takes the engine
    thread tens of seconds, while every other request waits. The bound is doubled, as a normaliser may
    drop characters before tokens are counted."""
    limit = 2 * context_length * longest_token
    size = prompt_text_bytes(prompt)
    if size > limit:
        raise invalid_request(
            f"This model's maximum context length is {context_length} tokens, but the prompt's text is {size:,} "
            f"bytes, more than {limit:,}, twice what {context_length} of its tokens can hold (its longest token "
            f"is {longest_token} bytes). Please shorten the prompt.",
            param=param,
            code="context_length_exceeded",
        )


def budget(prompt_ids: list[int], params: SamplingParams, context_length: int, param: str) -> int:
    room = context_length - len(prompt_ids)
    if room < 1:
        raise invalid_request(
            f"This model's maximum context length is {context_length} tokens, but the prompt has "
            f"{len(prompt_ids)} tokens. Please shorten the prompt.",
            param=param,
            code="context_length_exceeded",
        )
    if params.max_tokens is not None and params.max_tokens > room:
        raise invalid_request(
            f"This model's maximum context length is {context_length} tokens. The prompt has {len(prompt_ids)} "
            f"tokens and max_tokens asks for {params.max_tokens} more; at most {room} fit.",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return params.max_tokens or room


def _left_pad(rows: list[Row], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row.prompt_ids) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids)
        mask[index, width - len(row.prompt_ids):] = 1
    return ids.to(device), mask.to(device)


@torch.inference_mode()
def generate(model, rows: list[Row], pad_id: int, device: torch.device, mixed_adapters: bool,
             on_step: Callable[[list[tuple[Row, str]]], None]) -> None:
    """Run `rows` to their ends. After each step, `on_step` gets each live row with its new text; a row it
    gives a `finish_reason` ends there."""
    input_ids, mask = _left_pad(rows, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = None
    live = list(rows)
    while live:
        extra = {"adapter_names": [row.adapter for row in live]} if mixed_adapters else {}
        output = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                       use_cache=True, logits_to_keep=1, **extra)
        cache = output.cache
        logits = output.logits[:, -1, :].float()
        step = [(row, row.accept(row.sampler.pick(logits[index], row.generated))) for index, row in enumerate(live)]
        on_step(step)  # which may end rows too: those of a request whose client went away
        keep = [index for index, row in enumerate(live) if row.finish_reason is None]
        if not keep:
            return
        if len(keep) < len(live):
            kept = torch.tensor(keep, device=device)
            cache.batch_select_indices(kept)
            mask, positions = mask[kept], positions[kept]
            live = [live[index] for index in keep]
        input_ids = torch.tensor([[row.generated[-1]] for row in live], device=device)
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        positions = positions[:, -1:] + 1

