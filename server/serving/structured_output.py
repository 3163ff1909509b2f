"""Structured outputs (`response_format` json_object and json_schema) by constrained decoding with
llguidance: before each token is sampled, every token the grammar does not allow next is masked
out of the logits, so the answer parses and validates whatever the model's weights are.

llguidance was chosen over xgrammar and outlines because it builds its lexer lazily, as tokens come
(no compile step before the first token that grows with the schema), has no dependency beyond its
own wheel, and names the schema keyword it cannot enforce, which becomes the 400 a user reads. A
token mask costs 0.25 ms on the CPU for gxft/tiny-chat's 2,048 tokens and about 25 ms for SmolLM2's
49,152 (random logits, a schema with a bounded string: the hard case); that is about a fifth of a
SmolLM2 decoding step on a CPU, and the part to move off the engine thread when it matters. JSON is
generated compact (no free whitespace between tokens): with free whitespace a model, and the tiny
random one above all, can spend its whole budget on spaces, and each mask costs about 70 times more.
"""

import json
from typing import Any

import llguidance
import llguidance.hf
import llguidance.torch
import torch

from server.errors import invalid_request

ANY_OBJECT: dict[str, Any] = {"type": "object"}  # json_object: any JSON object


def grammar_tokenizer(tokenizer, vocab_size: int, eos_ids: frozenset[int]) -> llguidance.LLTokenizer:
    """The tokenizer as llguidance reads it, built once per loaded model (tens of milliseconds)."""
    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=sorted(eos_ids))


def compile_schema(schema: dict[str, Any], tokenizer: llguidance.LLTokenizer, name: str) -> str:
    """The grammar of a JSON schema; a schema llguidance cannot enforce is a 400 naming what it cannot."""
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema),
                                                             defaults={"whitespace_flexible": False})
    refused, problems = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    if refused:
        raise invalid_request(
            f"Invalid schema for response_format '{name}': GXFT's constrained decoding cannot enforce it: "
            f"{'; '.join(problems)}",
            param="response_format",
        )
    return grammar


class GrammarConstraint:
    """One row's place in its grammar: which tokens may come next, and the tokens it took."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, grammar: str):
        self.matcher = llguidance.LLMatcher(tokenizer, grammar)
        self.bitmask = llguidance.torch.allocate_token_bitmask(1, tokenizer.vocab_size)

    def allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits with every token the grammar forbids next set to minus infinity (a copy)."""
        llguidance.torch.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        masked = logits.unsqueeze(0).clone()
        llguidance.torch.apply_token_bitmask_inplace(masked, self.bitmask.to(logits.device))
        return masked[0]

    def take(self, token: int) -> None:
        self.matcher.consume_token(token)
