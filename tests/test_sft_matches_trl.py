"""GXFT's supervised LoRA training follows TRL's SFTTrainer (the field's reference) step for step, on the real
SmolLM2: the same two chat examples, padded and unpacked, one batch per step, from the same initial adapter
weights, with the same optimizer, schedule and clipping. Their per-step losses must agree within 1 %.

Two examples in a batch of two make each step's batch the same set on both sides, so neither side's
shuffling order matters; LoRA's random initial matrices are copied from GXFT's run into TRL's model.
"""

import copy
import json
from pathlib import Path

import pytest
import torch

from contract.training_settings import TrainingSettings
from worker.trainer import Trainer
from worker.training_run import TrainingRun

FACTS = Path(__file__).resolve().parent.parent / "sample_data" / "real_model" / "invented_facts.jsonl"
STEPS = 6
LEARNING_RATE = 2e-3


class RecordLosses:
    def __init__(self):
        self.losses: list[float] = []

    def step_done(self, step, total_steps, metrics, trained_tokens) -> None:
        self.losses.append(metrics["train_loss"])

    def order(self):
        return "continue"

    def save_checkpoint(self, *args, **kwargs):
        return "continue"


# TRL's SFTConfig sets the renamed `gradient_checkpointing` itself; the reference is TRL's, so is its notice.
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_losses_match_trl_sft_trainer(smollm2_folder, tmp_path):
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    rows = [json.loads(line) for line in FACTS.read_text().splitlines()[:2]]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows))
    settings = TrainingSettings(
        n_epochs=STEPS, batch_size=len(rows), learning_rate=LEARNING_RATE, learning_rate_multiplier=1.0,
        warmup_ratio=0.0, weight_decay=0.0, lora=True, lora_r=8, lora_alpha=16, lora_dropout=0.0, packing=False,
        max_grad_norm=1.0, context_length=2048,
    )
    gxft = Trainer(TrainingRun(method="supervised", model_path=str(smollm2_folder), model_name="SmolLM2",
                               train_path=train, valid_path=None, data_format="chat", seed=0, settings=settings,
                               workdir=tmp_path, device=torch.device("cpu")))
    gxft.setup()
    initial_adapter = {name: value.detach().clone() for name, value in gxft.model.state_dict().items()
                       if "lora_" in name}
    peft_config = copy.deepcopy(gxft.model.peft_config["default"])
    recorder = RecordLosses()
    gxft.train(recorder)

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32), peft_config)
    missing = set(initial_adapter) - set(model.state_dict())
    assert not missing, sorted(missing)[:3]
    model.load_state_dict(initial_adapter, strict=False)
    dataset = Dataset.from_list([{"prompt": row["messages"][:1], "completion": row["messages"][1:]} for row in rows])
    config = trl.SFTConfig(
        output_dir=str(tmp_path / "trl"), max_steps=STEPS, per_device_train_batch_size=len(rows),
        learning_rate=LEARNING_RATE, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        optim="adamw_torch", packing=False, logging_steps=1, report_to=[], use_cpu=True, seed=0, save_strategy="no",
        gradient_checkpointing=False, bf16=False,  # TRL trains in bf16 by default; GXFT in float32 on a CPU
    )
    trainer = trl.SFTTrainer(model=model, args=config, train_dataset=dataset,
                             processing_class=AutoTokenizer.from_pretrained(smollm2_folder))
    trainer.train()
    trl_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]

    assert len(recorder.losses) == len(trl_losses) == STEPS
    relative = [abs(ours - theirs) / theirs for ours, theirs in zip(recorder.losses, trl_losses, strict=True)]
    from compat_tests.conftest import MEASUREMENTS

    MEASUREMENTS.append(f"SmolLM2 LoRA losses against TRL SFTTrainer over {STEPS} steps: largest relative "
                        f"difference {max(relative):.2e} (GXFT {recorder.losses[0]:.4f} → {recorder.losses[-1]:.4f}, "
                        f"TRL {trl_losses[0]:.4f} → {trl_losses[-1]:.4f})")
    assert max(relative) < 0.01, list(zip(recorder.losses, trl_losses, strict=True))
    assert recorder.losses[-1] < recorder.losses[0] / 2  # it learned: the comparison is not of two flat lines
