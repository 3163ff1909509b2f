"""A row of generation (one choice of one request), how it samples its next token and when it ends,
and the bounds a prompt is checked against before it becomes rows.

Rows may belong to different requests and, on a LoRA base, to different adapters: peft's
mixed-batch forward (`adapter_names`) applies each row's adapter, "__base__" for none.
The loop that decodes them is decoding_batch.py.
"""

from dataclasses import dataclass, field
from typing import Literal

import torch

from server.completions_protocol import FinishReason
from server.errors import invalid_request
from server.serving.generation_request import Generation, TokenLogprob
from server.serving.params import SamplingParams
from server.serving.structured_output import GrammarConstraint
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
    group: str = ""  # the loaded model it runs on (model_cache.Placement.group)
    project: str = ""  # whose request it answers, for a fair share of the engine
    top_logprobs: int | None = None  # None: no logprobs asked; else how many alternatives each token lists
    constraint: GrammarConstraint | None = None  # the grammar its answer follows (structured outputs)
    generated: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)  # those not yet delivered
    # Why the row ended: as OpenAI says it, or because its request was cancelled (its client went away).
    finish_reason: FinishReason | Literal["cancelled"] | None = None

    def accept(self, token: int, logits: torch.Tensor) -> str:
        """Take the sampled token (`logits` are the model's own, before any sampling setting); answer the
        text it releases."""
        self.generated.append(token)
        if self.constraint is not None:
            self.constraint.take(token)
        if token in self.eos_ids:
            self.finish_reason = "stop"
            return self.text.finish()
        if self.top_logprobs is not None:
            self.logprobs.append(token_logprob(self.text.tokenizer, token, logits, self.top_logprobs))
        piece = self.text.add(token)
        if self.text.stopped:
            self.finish_reason = "stop"
        elif len(self.generated) >= self.max_new_tokens:
            self.finish_reason = "length"
            piece += self.text.finish()
        return piece


def token_logprob(tokenizer, token: int, logits: torch.Tensor, alternatives: int) -> TokenLogprob:
    """The token's log-probability under the model (a log-softmax of its logits), and the most likely
    tokens in its place."""
    logprobs = torch.log_softmax(logits, dim=-1)
    top = logprobs.topk(alternatives) if alternatives else None
    return TokenLogprob(
        token=tokenizer.decode([token]), logprob=float(logprobs[token]),
        top=[(tokenizer.decode([int(i)]), float(v)) for v, i in zip(*top, strict=True)] if top is not None else [],
    )


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
