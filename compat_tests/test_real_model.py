"""A real pretrained model, SmolLM2-135M-Instruct, fine-tuned and served through the strict openai client: it
learns ten invented facts it cannot have known, keeps what it knew, stops at its own end-of-turn token, and
its adapter and merged export load with plain peft and transformers and answer the same.

The rest of the suite trains the one-million-parameter tiny model; these are the failures that show only on
a real model (template or end-of-turn differing between training and serving, a model that never stops).
"""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest

from compat_tests.conftest import MEASUREMENTS, SAMPLE_DATA
from compat_tests.test_files import jsonl, processed
from compat_tests.test_fine_tuning import metrics_events, wait_done
from compat_tests.test_serving import _download, _greedy
from conftest import SMOLLM2

FACTS = {
    row["messages"][0]["content"]: row["messages"][1]["content"]
    for row in map(json.loads, (SAMPLE_DATA / "real_model" / "invented_facts.jsonl").read_text().splitlines())
}
# Questions the base model answers right (checked below), and the word a right answer holds.
GENERAL = {
    "What is the capital of France?": "Paris",
    "What is the capital of Japan?": "Tokyo",
    "What is the capital of Germany?": "Berlin",
    "How many days are in a week?": "7",
    "Name three primary colors.": "yellow",
}


@pytest.fixture(scope="module")
def client(readme_server):
    return readme_server.client()


def answers(client, model: str, questions) -> dict[str, tuple[str, str]]:
    """Greedy answers, asked all at once (the server batches them): question → (content, finish_reason)."""
    def ask(question: str) -> tuple[str, str]:
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": question}], temperature=0, max_tokens=48)
        choice = completion.choices[0]
        return choice.message.content or "", choice.finish_reason
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(questions, pool.map(ask, questions), strict=True))


@pytest.fixture(scope="module")
def tuned(client, quick_start):
    """The README's quick start is this module's LoRA run (5 epochs, batch 2, learning rate multiplier 2, seed
    0: 25 steps, measured to give 10 of 10 facts and keep all five general answers on a 2-core CPU)."""
    assert quick_start.result.returncode == 0, quick_start.result.stderr
    status, model = quick_start.result.stdout.splitlines()[0].split()
    assert status == "succeeded", quick_start.result.stdout
    done = next(job for job in client.fine_tuning.jobs.list(limit=100) if job.fine_tuned_model == model)
    MEASUREMENTS.append(f"SmolLM2 LoRA on 10 facts: {done.trained_tokens} tokens in the README's quick start, "
                        f"{done.trained_tokens / quick_start.seconds:.0f} tokens/s over the whole block")
    return done


def test_lora_learns_invented_facts_and_keeps_what_it_knew(client, tuned):
    base = answers(client, SMOLLM2, [*FACTS, *GENERAL])
    after = answers(client, tuned.fine_tuned_model, [*FACTS, *GENERAL])

    assert all(word.lower() in base[q][0].lower() for q, word in GENERAL.items()), base
    assert [q for q, answer in FACTS.items() if base[q][0] == answer] == []
    recalled = [q for q, answer in FACTS.items() if after[q][0] == answer]
    kept = [q for q, word in GENERAL.items() if word.lower() in after[q][0].lower()]
    MEASUREMENTS.append(f"SmolLM2 after LoRA: {len(recalled)}/10 facts word for word (base 0/10), "
                        f"{len(kept)}/5 general answers kept")
    assert len(recalled) >= 9, after
    assert len(kept) == 5, after
    # Each answer ended at <|im_end|>: the end-of-turn token stopped generation, and is not in the text.
    assert all(reason == "stop" and "<|im_end|>" not in text for text, reason in after.values()), after


def test_downloaded_adapter_and_merged_export_answer_the_same(client, tuned, smollm2_folder, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    questions = list(FACTS)[:3]
    served = {q: content for q, (content, _) in answers(client, tuned.fine_tuned_model, questions).items()}
    checkpoint = client.fine_tuning.jobs.checkpoints.list(tuned.id).data[0]
    files = [client.files.retrieve(file_id) for file_id in checkpoint.model_extra["result_files"]]
    adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2_folder),
                                        _download(client, files, tmp_path / "adapter")).eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    assert {q: _greedy(adapter, tokenizer, q) for q in questions} == served

    export = client.post(f"/models/{tuned.fine_tuned_model}/export", cast_to=httpx2.Response,
                         body={"format": "merged"}).json()
    folder = _download(client, [client.files.retrieve(f["id"]) for f in export["files"]], tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert {q: _greedy(merged, AutoTokenizer.from_pretrained(folder), q) for q in questions} == served


def test_full_fine_tuning_succeeds_and_serves(client):
    facts = processed(client, (SAMPLE_DATA / "real_model" / "invented_facts.jsonl").read_bytes(), "facts.jsonl")
    job = client.fine_tuning.jobs.create(model=SMOLLM2, training_file=facts.id, seed=0, suffix="full",
                                         hyperparameters={"n_epochs": 1, "batch_size": 5, "lora": False})
    done = wait_done(client, job.id, patience=300)
    assert done.status == "succeeded", done.error
    assert len(metrics_events(client, job.id)) == 2
    text, reason = answers(client, done.fine_tuned_model, ["What is the capital of France?"]).popitem()[1]
    assert "Paris" in text and reason == "stop"


def test_dpo_raises_the_margin_of_preferred_answers(client):
    wrong = ["Nobody knows.", "It is a secret.", "I cannot say.", "Maybe blue.", "No idea at all."]
    rows = [{"input": {"messages": [{"role": "user", "content": question}]},
             "preferred_output": [{"role": "assistant", "content": answer}],
             "non_preferred_output": [{"role": "assistant", "content": wrong[index % len(wrong)]}]}
            for index, (question, answer) in enumerate(FACTS.items())]
    pairs = processed(client, jsonl(rows), "pairs.jsonl")
    job = client.fine_tuning.jobs.create(
        model=SMOLLM2, training_file=pairs.id, seed=0, suffix="dpo",
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 2, "batch_size": 5, "beta": 0.1}}},
    )
    done = wait_done(client, job.id, patience=300)
    assert done.status == "succeeded", done.error
    metrics = [event.data for event in metrics_events(client, job.id)]
    assert len(metrics) == 4
    assert metrics[0]["train_loss"] == pytest.approx(0.6931, abs=0.01)  # the policy starts as its reference
    margins = [step["train_reward_margin"] for step in metrics]
    MEASUREMENTS.append(f"SmolLM2 DPO reward margins by step: {', '.join(f'{m:.3f}' for m in margins)}")
    assert margins[-1] > margins[0] and margins[-1] > 0 and metrics[-1]["train_loss"] < 0.69
