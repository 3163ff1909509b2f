"""Packed batches train exactly as separate examples: no attention or position leakage between them."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from worker.data import IGNORE, collate, tokenize_file
from worker.forward import logits as model_logits

TINY = Path(__file__).resolve().parent.parent / "sample_data" / "models" / "tiny-chat"
TRAIN = Path(__file__).resolve().parent.parent / "sample_data" / "sample_training_data.jsonl"


def token_losses(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = model_logits(model, batch)[:, :-1]
    targets = batch["labels"][:, 1:]
    losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
    return losses[targets != IGNORE]


def test_packed_row_gives_the_same_losses_as_separate_examples():
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY).eval()
    examples = tokenize_file(tokenizer, TRAIN, "chat", 2048)[:4]
    with torch.no_grad():
        separate = torch.cat([token_losses(model, collate([e], packing=False, pad_id=0)) for e in examples])
        packed = token_losses(model, collate(examples, packing=True, pad_id=0))
        padded = token_losses(model, collate(examples, packing=False, pad_id=0))
    assert packed.shape == separate.shape
    torch.testing.assert_close(packed, separate, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(padded, separate, atol=1e-5, rtol=1e-4)


def test_only_assistant_turns_and_their_end_token_are_trained():
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    (example,) = tokenize_file(tokenizer, TRAIN, "chat", 2048)[:1]
    labelled = zip(example.input_ids, example.labels, strict=True)
    trained = tokenizer.decode([t for t, label in labelled if label != IGNORE])
    assert trained == "The capital of France is Paris.<|im_end|>\n"
    rendered = tokenizer.decode(example.input_ids)
    assert rendered.startswith("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="padding-free attention runs on a CUDA GPU")
def test_padding_free_attention_keeps_packed_and_padded_examples_apart_on_a_gpu():
    from worker import attention
    from worker.data import to_device

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.bfloat16, attn_implementation=attention.NAME)
    model = model.cuda().eval()
    assert attention.padding_free(model)
    examples = tokenize_file(tokenizer, TRAIN, "chat", 2048)[:4]
    cuda = torch.device("cuda")
    with torch.no_grad():
        separate = torch.cat([token_losses(model, to_device(collate([e], False, 0), cuda)) for e in examples])
        packed = token_losses(model, to_device(collate(examples, True, 0, padding_free=True), cuda))
        padded = token_losses(model, to_device(collate(examples, False, 0), cuda))
    torch.testing.assert_close(packed.float(), separate.float(), atol=3e-2, rtol=2e-2)
    torch.testing.assert_close(padded.float(), separate.float(), atol=3e-2, rtol=2e-2)
