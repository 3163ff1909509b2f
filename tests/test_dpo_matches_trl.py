"""GXFT's DPO loss equals TRL's DPOTrainer (the field's reference) on the same model and pairs.

GXFT computes DPO inside its own recipe (worker/trainer.py) so that DPO jobs share the supervised
loop's checkpoints, pause/resume and leases. This test holds it to TRL: the same preference pairs,
tokenised by each side from the same chat template, scored by a perturbed policy against the
original model, must give the same token ids and the same loss.
"""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from worker.data import collate_pairs, tokenize_preference
from worker.forward import logits
from worker.objectives.preference import dpo_loss, sequence_logps

TINY = Path(__file__).resolve().parent.parent / "sample_data" / "models" / "tiny-chat"
BETA = 0.1


def preference_examples() -> list[dict]:
    return [
        {
            "input": {"messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": f"What is {i} plus {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": f"It is {2 * i}."}],
            "non_preferred_output": [{"role": "assistant", "content": f"I think it might be {2 * i + 1}, who knows."}],
        }
        for i in range(4)
    ]


@pytest.mark.parametrize("beta", [BETA, 0.5])
# TRL 1.16's DPOConfig itself sets the renamed `gradient_checkpointing`; the reference is TRL's, so is its notice.
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
def test_dpo_loss_equals_trl(tmp_path, beta):
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    reference = AutoModelForCausalLM.from_pretrained(TINY)
    policy = AutoModelForCausalLM.from_pretrained(TINY)
    torch.manual_seed(0)
    with torch.no_grad():  # a policy that differs from its reference, so the loss is not just log 2
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    examples = preference_examples()

    rows = [{"prompt": e["input"]["messages"], "chosen": e["preferred_output"],
             "rejected": e["non_preferred_output"]} for e in examples]
    config = trl.DPOConfig(output_dir=str(tmp_path), beta=beta, per_device_train_batch_size=len(rows),
                           report_to=[], use_cpu=True, max_length=None)
    trainer = trl.DPOTrainer(model=policy, ref_model=reference, args=config, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer)
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(policy, trl_batch))

    batch = collate_pairs([tokenize_preference(tokenizer, e, 2048) for e in examples], tokenizer.pad_token_id)
    with torch.no_grad():
        policy_logps = sequence_logps(logits(policy, batch), batch["labels"])
        reference_logps = sequence_logps(logits(reference, batch), batch["labels"])
    loss, rewards = dpo_loss(policy_logps, reference_logps, beta)

    assert batch["input_ids"].tolist() == trl_batch["input_ids"].tolist()
    assert float(loss) == pytest.approx(trl_loss, abs=1e-5)
    assert abs(float(loss) - 0.6931) > 0.01  # the policy really differs from the reference
    # TRL keeps its logged metrics in `_metrics`, per mode ("eval": the policy is not in training mode).
    trl_metrics = trainer._metrics["eval"]
    assert rewards["reward_margin"] == pytest.approx(trl_metrics["rewards/margins"][-1], abs=1e-5)
    assert rewards["reward_accuracy"] == pytest.approx(trl_metrics["rewards/accuracies"][-1])
