"""Turning training files into token ids, loss masks and batches.

Chat examples go through the tokenizer's own chat template, exactly as serving renders them, end-of-turn
token included, with their `tools`; only assistant turns (without `weight: 0`) count in the loss.
Prompt/completion and text examples are plain text ending in the end-of-sequence token; alpaca rows
become chat turns. A preference example becomes two chat sequences, preferred and rejected, that
share the prompt and count only their final assistant turn.

Batches are either padded (one row per example) or packed: a batch's examples laid end to end in one
row with position ids restarting at each example. transformers reads those position ids as separate
sequences, so no example attends to, or is trained to predict, another.
"""

import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import torch

from contract.data_formats import check_example, iter_examples
from contract.literals import DataFormat

IGNORE = -100
T = TypeVar("T")


class TokenizedExample(msgspec.Struct):
    input_ids: list[int]
    labels: list[int]


class PreferencePair(msgspec.Struct):
    preferred: TokenizedExample
    rejected: TokenizedExample


class Prompt(msgspec.Struct):
    """A reinforcement prompt: the chat-rendered prompt, ready for the model's answer, and the line itself
    (the graders' `item`)."""

    input_ids: list[int]
    item: dict[str, Any]


class DataError(Exception):
    """The training data cannot be trained on (found while tokenising)."""


def read_examples(path: Path, data_format: DataFormat) -> list[tuple[int, dict[str, Any]]]:
    """Each example with its line number."""
    examples = []
    with open(path, "rb") as stream:
        for line_number, item in iter_examples(stream):
            if isinstance(item, Exception):
                raise DataError(f"line {line_number}: {item}")
            check_example(item, data_format)
            examples.append((line_number, item))
    return examples


def as_messages(example: dict[str, Any], data_format: DataFormat) -> list[dict[str, Any]]:
    if data_format == "chat":
        return example["messages"]
    if data_format == "alpaca":
        prompt = example["instruction"] + (f"\n\n{example['input']}" if example.get("input") else "")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": example["output"]}]
    raise ValueError(f"{data_format} examples are not chat messages")


def _render(tokenizer, messages: list[dict], tools: Any, generation_prompt: bool) -> str:
    try:
        return tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt
        )
    except Exception as exc:  # the template's own error (jinja's, or raise_exception in the template)
        raise DataError(f"the model's chat template cannot render this example: {exc}") from exc


def _check_tools_rendered(tokenizer, messages: list[dict[str, Any]], tools: Any, text: str) -> None:
    """A template that drops tools or tool calls would train the model on conversations it never sees."""
    if tools and _render(tokenizer, messages, None, False) == text:
        raise DataError(
            'the model\'s chat template cannot render tools: it ignores the example\'s "tools", so the model '
            "would never see them. Use a model whose chat template supports tools, or leave \"tools\" out"
        )
    for index, message in enumerate(messages):
        if message.get("tool_calls"):
            without_calls = [*messages[:index], {**message, "tool_calls": None}, *messages[index + 1 :]]
            if _render(tokenizer, without_calls, tools, False) == text:
                raise DataError(
                    f"the model's chat template cannot render tool calls: it leaves out messages[{index}].tool_calls"
                )


def tokenize_chat(tokenizer, messages: list[dict[str, Any]], tools: Any, max_length: int) -> TokenizedExample:
    text = _render(tokenizer, messages, tools, False)
    _check_tools_rendered(tokenizer, messages, tools, text)
    trained_spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        prompt = _render(tokenizer, messages[:index], tools, True)
        turn = _render(tokenizer, messages[: index + 1], tools, False)
        if not (text.startswith(prompt) and text.startswith(turn)):
            raise DataError(
                "the model's chat template does not render a conversation turn by turn (the prompt for "
                f"message {index} is not a prefix of the whole), so its assistant turns cannot be found"
            )
        trained_spans.append((len(prompt), len(turn)))
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = encoding["input_ids"]
    labels = [
        token if any(start <= offset[0] < end for start, end in trained_spans) else IGNORE
        for token, offset in zip(input_ids, encoding["offset_mapping"], strict=True)
    ]
    return TokenizedExample(input_ids=input_ids[:max_length], labels=labels[:max_length])


def tokenize_text(tokenizer, prompt: str, completion: str, max_length: int) -> TokenizedExample:
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = prompt_ids + completion_ids
    labels = [IGNORE] * len(prompt_ids) + completion_ids
    return TokenizedExample(input_ids=input_ids[:max_length], labels=labels[:max_length])


def tokenize(tokenizer, example: dict[str, Any], data_format: DataFormat, max_length: int) -> TokenizedExample:
    if data_format in ("chat", "alpaca"):
        return tokenize_chat(tokenizer, as_messages(example, data_format), example.get("tools"), max_length)
    if data_format == "prompt_completion":
        return tokenize_text(tokenizer, example["prompt"], example["completion"], max_length)
    if data_format == "text":
        return tokenize_text(tokenizer, "", example["text"], max_length)
    raise DataError(f"the {data_format} format cannot be used for supervised fine-tuning")


def tokenize_preference(tokenizer, example: dict[str, Any], max_length: int) -> PreferencePair:
    # Earlier assistant turns are context; only the preferred or rejected answer is scored.
    prompt = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in example["input"]["messages"]]
    tools = example["input"].get("tools")
    return PreferencePair(
        preferred=tokenize_chat(tokenizer, prompt + example["preferred_output"], tools, max_length),
        rejected=tokenize_chat(tokenizer, prompt + example["non_preferred_output"], tools, max_length),
    )


def tokenize_prompt(tokenizer, example: dict[str, Any], max_length: int) -> Prompt:
    # Open models' chat templates know system, not OpenAI's developer role.
    messages = [{**m, "role": "system"} if m["role"] == "developer" else m for m in example["messages"]]
    text = _render(tokenizer, messages, example.get("tools"), True)
    input_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(input_ids) > max_length:
        raise DataError(f"the prompt is {len(input_ids)} tokens, and with max_completion_tokens the answer must fit "
                        f"in the context length: at most {max_length} tokens of prompt")
    return Prompt(input_ids=input_ids, item=example)


def tokenize_prompts(tokenizer, path: Path, max_length: int) -> list[Prompt]:
    """The prompts of a reinforcement file; problems name their line."""
    return _tokenize_lines(path, "reinforcement", lambda example: tokenize_prompt(tokenizer, example, max_length))


def tokenize_file(tokenizer, path: Path, data_format: DataFormat, max_length: int) -> list[TokenizedExample]:
    """The examples of a supervised file; problems name their line."""
    examples = _tokenize_lines(path, data_format, lambda example: tokenize(tokenizer, example, data_format, max_length))
    return _keep_trainable(examples, _labelled)


def tokenize_pairs(tokenizer, path: Path, max_length: int) -> list[PreferencePair]:
    """The pairs of a preference file; problems name their line."""
    pairs = _tokenize_lines(path, "preference", lambda example: tokenize_preference(tokenizer, example, max_length))
    return _keep_trainable(pairs, lambda pair: _labelled(pair.preferred) and _labelled(pair.rejected))


def _tokenize_lines(path: Path, data_format: DataFormat, tokenize_one: Callable[[dict[str, Any]], T]) -> list[T]:
    tokenized = []
    for line_number, example in read_examples(path, data_format):
        try:
            tokenized.append(tokenize_one(example))
        except DataError as exc:
            raise DataError(f"line {line_number}: {exc}") from exc
    return tokenized


def targets(example: TokenizedExample) -> int:
    """The tokens whose prediction the example trains (its first token is never a target)."""
    return sum(label != IGNORE for label in example.labels[1:])


def _labelled(example: TokenizedExample) -> bool:
    return any(label != IGNORE for label in example.labels)


def _keep_trainable(examples: list[T], trains: Callable[[T], bool]) -> list[T]:
    usable = [example for example in examples if trains(example)]
    if not usable:
        raise DataError("no example has a token to train on (every assistant turn has weight 0 or was truncated)")
    return usable


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    random.Random(seed * 1000 + epoch).shuffle(order)
    return order


def collate(examples: list[TokenizedExample], packing: bool, pad_id: int,
            padding_free: bool = False) -> dict[str, Any]:
    """A batch: padded (one row per example) or packed (one row); with `padding_free`, a packed batch also
    carries its examples' boundaries for variable-length attention kernels (worker/attention.py).
    `target_positions` are the flat indices, in the row-major (rows × (length − 1)) grid of
    next-token predictions, of those whose target is labelled (worker/loss.py)."""
    if packing:
        input_ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for example in examples:
            input_ids += example.input_ids
            # The first token of each packed example is never a target: nothing before it is its context.
            labels += [IGNORE] + example.labels[1:]
            positions += range(len(example.input_ids))
        batch: dict[str, Any] = {
            "input_ids": torch.tensor([input_ids]),
            "labels": torch.tensor([labels]),
            "position_ids": torch.tensor([positions]),
            "target_positions": torch.tensor([i for i, label in enumerate(labels[1:]) if label != IGNORE]),
        }
        if padding_free:
            lengths = [len(example.input_ids) for example in examples]
            boundaries = torch.tensor([0, *itertools.accumulate(lengths)], dtype=torch.int32)
            batch.update(cu_seq_lens_q=boundaries, cu_seq_lens_k=boundaries, max_length_q=max(lengths),
                         max_length_k=max(lengths))
        return batch
    width = max(len(e.input_ids) for e in examples)
    padded_labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in examples]
    return {
        "input_ids": torch.tensor([e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in examples]),
        "labels": torch.tensor(padded_labels),
        "attention_mask": torch.tensor([[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in examples]),
        "target_positions": torch.tensor([row * (width - 1) + i for row, labels in enumerate(padded_labels)
                                          for i, label in enumerate(labels[1:]) if label != IGNORE]),
    }


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def collate_pairs(pairs: list[PreferencePair], pad_id: int) -> dict[str, torch.Tensor]:
    """One padded batch: the preferred sequences, then the rejected ones in the same order."""
    return collate([p.preferred for p in pairs] + [p.rejected for p in pairs], packing=False, pad_id=pad_id)


def batch_indices(count: int, batch_size: int, seed: int, epoch: int) -> Iterator[list[int]]:
    """The epoch's batches, as indices of examples in a seeded order."""
    order = epoch_order(count, seed, epoch)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]


def steps_per_epoch(example_count: int, batch_size: int) -> int:
    return -(-example_count // batch_size)
