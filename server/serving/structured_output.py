"""Structured outputs (`response_format` json_object and json_schema) by constrained decoding with
llguidance: before each token is sampled, every token the grammar does not allow next is masked
out of the logits, so the answer parses and validates whatever the model's weights are.

llguidance was chosen over xgrammar and outlines because it builds its lexer lazily, as tokens come
(no compile step before the first token that grows with the schema), has no dependency beyond its
own wheel, and names the schema keyword it cannot enforce, which becomes the 400 a user reads.
Computing and applying the masks costs 0.14 ms a token on a CPU for gxft/tiny-chat's 2,048 tokens and
4.2 ms for SmolLM2's 49,152, 1.19× and 1.22× the time a token takes without a schema
(scripts/bench/structured_output.py, 8 rows); it runs on the engine thread, row by row, which is the
part to move to llguidance's parallel mask filling when batches grow. JSON is
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

_BIT_SHIFTS = torch.arange(32, dtype=torch.int32)


def grammar_tokenizer(tokenizer, vocab_size: int, eos_ids: frozenset[int]) -> llguidance.LLTokenizer:
    """The tokenizer as llguidance reads it, built once per loaded model (tens of milliseconds)."""
    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=sorted(eos_ids))


def compile_schema(schema: dict[str, Any], tokenizer: llguidance.LLTokenizer, name: str) -> str:
    """The grammar of a JSON schema; a schema llguidance cannot enforce is a 400 naming what it cannot."""
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema),
                                                             defaults={"whitespace_flexible": False})
    return _checked(grammar, tokenizer, f"Invalid schema for response_format '{name}'", "response_format")


def compile_tool_calls(lark: str, tokenizer: llguidance.LLTokenizer) -> str:
    """The grammar of the tool calls tool_choice forces (tool_calls.py), with the tools' parameter schemas."""
    return _checked(llguidance.LLMatcher.grammar_from_lark(lark), tokenizer, "Invalid 'tools' parameters", "tools")


def _checked(grammar: str, tokenizer: llguidance.LLTokenizer, what: str, param: str) -> str:
    refused, problems = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
    if refused:
        raise invalid_request(f"{what}: GXFT's constrained decoding cannot enforce it: {'; '.join(problems)}",
                              param=param)
    return grammar


class GrammarConstraint:
    """One row's place in its grammar: which tokens may come next, and the tokens it took."""

    def __init__(self, tokenizer: llguidance.LLTokenizer, grammar: str):
        self.matcher = llguidance.LLMatcher(tokenizer, grammar)
        self.bitmask = llguidance.torch.allocate_token_bitmask(1, tokenizer.vocab_size)

    def allowed(self, logits: torch.Tensor) -> torch.Tensor:
        """The logits with every token the grammar forbids next set to minus infinity (a copy).

        The mask is unpacked here rather than by llguidance's `apply_token_bitmask_inplace`, which goes
        through torch.compile: seconds of compiling on the first structured request of a server."""
        llguidance.torch.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        words = self.bitmask[0].to(logits.device)  # 32 tokens to an int32 word, lowest bit first
        bits = (words.unsqueeze(-1) >> _BIT_SHIFTS.to(logits.device)) & 1
        allowed = bits.flatten()[: logits.shape[-1]].bool()
        return logits.masked_fill(~allowed, float("-inf"))

    def take(self, token: int) -> None:
        self.matcher.consume_token(token)
