"""The chunked output-head loss (worker/loss.py) equals the model's own loss, and gives the same gradients."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from contract.training_settings import TrainingSettings
from worker import loss as fused
from worker.data import collate, tokenize_file
from worker.model_setup import apply_lora

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "sample_data" / "models" / "tiny-chat"
TRAIN = ROOT / "sample_data" / "sample_training_data.jsonl"


def lora_settings() -> TrainingSettings:
    return TrainingSettings(n_epochs=1, batch_size=4, learning_rate=1e-3, learning_rate_multiplier=1.0,
                            warmup_ratio=0.0, weight_decay=0.0, lora=True, lora_r=8, lora_alpha=16.0,
                            lora_dropout=0.0, packing=True, max_grad_norm=1.0, context_length=512)


def model_and_batch(lora: bool, packing: bool):
    tokenizer = AutoTokenizer.from_pretrained(TINY)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(TINY)
    if lora:
        model = apply_lora(model, lora_settings())
        for name, parameter in model.named_parameters():  # LoRA B starts at zero; make the adapter count
            if "lora_B" in name:
                torch.nn.init.normal_(parameter, std=0.02)
    examples = tokenize_file(tokenizer, TRAIN, "chat", 512)[:6]
    return model, collate(examples, packing=packing, pad_id=tokenizer.pad_token_id)


def grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
@pytest.mark.parametrize("packing", [True, False], ids=["packed", "padded"])
def test_chunked_loss_and_gradients_equal_the_models_own(lora, packing, monkeypatch):
    monkeypatch.setattr(fused, "CHUNK_ELEMENTS", 2048 * 100)  # several chunks even for this small batch
    model, batch = model_and_batch(lora, packing)
    inputs = {k: v for k, v in batch.items() if k != "target_positions"}
    reference = model(**inputs, use_cache=False)
    reference.loss.backward()
    expected = grads(model)
    model.zero_grad(set_to_none=True)

    loss, correct = fused.next_token_loss(model, batch)
    loss.backward()
    torch.testing.assert_close(loss, reference.loss, atol=1e-5, rtol=1e-5)
    targets = batch["labels"][:, 1:]
    predicted = reference.logits[:, :-1].argmax(-1)
    assert int(correct) == int(((predicted == targets) & (targets != -100)).sum())
    actual = grads(model)
    assert actual.keys() == expected.keys() and len(actual) > 0
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], atol=2e-5, rtol=1e-3, msg=name)


def test_no_gradient_work_without_autograd():
    model, batch = model_and_batch(lora=True, packing=True)
    with torch.no_grad():
        loss, _ = fused.next_token_loss(model, batch)
    assert not loss.requires_grad and loss > 0
