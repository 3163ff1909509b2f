"""GXFT's GRPO loss and its gradients equal TRL's GRPOTrainer (the field's reference) on the same model,
prompts, answers, rewards and reference log-probabilities.

GXFT runs GRPO inside its own recipe (worker/objectives/reinforcement.py) so that reinforcement jobs share
the loop's checkpoints, pause/resume and leases, as DPO does. This holds it to TRL's `_compute_loss` with
TRL's defaults (loss_type "dapo", one update per generation, epsilon 0.2), and its group advantages to
TRL's formula over TRL's own `nanstd`. The prompts share one length: TRL gives left-padded rows no
position ids of their own, where GXFT does, and with no padding the two agree by construction.
"""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from compat_tests.conftest import MEASUREMENTS
from worker.objectives.reinforcement import completion_logps, group_advantages, grpo_loss

TINY = Path(__file__).resolve().parent.parent / "sample_data" / "models" / "tiny-chat"
GROUP = 4


def _batch(tokenizer) -> dict[str, torch.Tensor]:
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": f"Name city {i}."}], tokenize=False,
                                             add_generation_prompt=True) for i in range(2)]
    prompt_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in prompts]
    assert len({len(ids) for ids in prompt_ids}) == 1
    rows = torch.tensor([ids for ids in prompt_ids for _ in range(GROUP)])
    generator = torch.Generator().manual_seed(7)
    completions = torch.randint(3, tokenizer.vocab_size, (rows.size(0), 6), generator=generator)
    completion_mask = torch.ones_like(completions)
    for row, length in enumerate([6, 4, 5, 2, 6, 3, 1, 6]):  # answers of different lengths
        completion_mask[row, length:] = 0
    return {"prompt_ids": rows, "prompt_mask": torch.ones_like(rows), "completion_ids": completions,
            "completion_mask": completion_mask}


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_grpo_loss_and_gradients_equal_trl(tmp_path, beta):
    trl = pytest.importorskip("trl")
    from datasets import Dataset
    from trl.trainer.utils import nanstd

    tokenizer = AutoTokenizer.from_pretrained(TINY)
    reference = AutoModelForCausalLM.from_pretrained(TINY)
    policy = AutoModelForCausalLM.from_pretrained(TINY)
    torch.manual_seed(0)
    with torch.no_grad():  # a policy that differs from its reference, so the KL term is not 0
        for parameter in policy.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.02)
    batch = _batch(tokenizer)
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25, 0.0, 0.0, 1.0, 0.75])

    advantages = group_advantages(rewards, GROUP)
    groups = rewards.view(-1, GROUP)
    trl_advantages = ((rewards - groups.mean(1).repeat_interleave(GROUP))
                      / (nanstd(groups, dim=1).repeat_interleave(GROUP) + 1e-4))
    assert advantages.tolist() == pytest.approx(trl_advantages.tolist(), abs=1e-6)

    with torch.no_grad():
        reference_logps = completion_logps(reference, *batch.values())
    config = trl.GRPOConfig(output_dir=str(tmp_path), beta=beta, num_generations=GROUP,
                            per_device_train_batch_size=GROUP * 2, max_completion_length=6, report_to=[],
                            use_cpu=True, bf16=False)  # float32 on both sides: GXFT trains in float32 on a CPU
    trainer = trl.GRPOTrainer(model=policy, reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
                              args=config, train_dataset=Dataset.from_list([{"prompt": "x"}] * 8),
                              processing_class=tokenizer)
    policy.eval()  # TRL's eval mode: the loss is not divided over gradient accumulation steps
    inputs = {**batch, "advantages": advantages, "ref_per_token_logps": reference_logps,
              "num_items_in_batch": batch["completion_mask"].sum()}
    trl_loss = trainer._compute_loss(policy, inputs)
    trl_loss.backward()
    trl_gradients = {name: p.grad.clone() for name, p in policy.named_parameters()}
    policy.zero_grad()

    logps = completion_logps(policy, *batch.values())
    loss, stats = grpo_loss(logps, logps.detach(), reference_logps if beta else None, advantages,
                            batch["completion_mask"], beta)
    loss.backward()

    assert float(loss) == pytest.approx(float(trl_loss), abs=1e-5)
    worst = max(float((p.grad - trl_gradients[name]).abs().max()) for name, p in policy.named_parameters())
    assert worst < 1e-5, worst
    MEASUREMENTS.append(f"GRPO against TRL's GRPOTrainer, beta {beta}: loss {float(loss):.6f} against "
                        f"{float(trl_loss):.6f}, largest gradient difference {worst:.1e}")
    assert max(float(g.abs().max()) for g in trl_gradients.values()) > 1e-3  # the gradients are not all 0
    if beta:
        assert stats["kl"] > 0.001
