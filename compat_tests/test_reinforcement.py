"""Reinforcement fine-tuning through the strict client, as OpenAI's RFT is called: prompts whose other fields
the grader reads, `method: {"type": "reinforcement", "reinforcement": {"grader": ..., "hyperparameters": ...}}`,
GRPO in the worker on the model's own answers. On gxft/tiny-chat a grader that rewards one answer raises
the validation reward and the served model's answers score higher than the base's; a multi grader's parts
(one of them a label_model grader, asked through the server) are reported each; RFT jobs pause and resume
as the others do; and every mistake in the data, the grader or the hyperparameters is a 400 naming it."""

import base64
import csv
import io

import openai
import pytest

from compat_tests.conftest import MEASUREMENTS
from compat_tests.test_files import jsonl, processed
from compat_tests.test_fine_tuning import TINY, _error, all_events, metrics_events, wait_done, wait_for

CLOSE = {"type": "text_similarity", "name": "close to the answer", "input": "{{sample.output_text}}",
         "reference": "{{item.answer}}", "evaluation_metric": "fuzzy_match"}
TRAIN_QUESTIONS = ["What is the capital of France?", "Name the city of light.", "Where is the Eiffel Tower?",
                   "Which city is France's capital?", "Say the answer.", "Answer in one word.", "Tell me the city.",
                   "Which city?", "Where is the Louvre?", "Which city hosts Roland Garros?", "Name a French city.",
                   "Where do the Parisians live?"]
VALID_QUESTIONS = ["What is the capital of France, please?", "Which city has the Arc de Triomphe?",
                   "Name France's largest city.", "Where is Notre-Dame?"]
# Full fine-tuning: the tiny model's output head must move to put its mass on a few tokens, and LoRA
# leaves the head alone (SmolLM2's test trains LoRA, the default).
HYPERPARAMETERS = {"n_epochs": 10, "batch_size": 4, "learning_rate_multiplier": 100, "lora": False,
                   "compute_multiplier": 2, "max_completion_tokens": 8, "eval_interval": 10, "eval_samples": 2}


def prompts(questions: list[str], answer: str = "Paris") -> bytes:
    return jsonl({"messages": [{"role": "user", "content": question}], "answer": answer} for question in questions)


@pytest.fixture(scope="module")
def rft_files(server):
    client = server.client()
    return processed(client, prompts(TRAIN_QUESTIONS), "rft-train.jsonl"), processed(
        client, prompts(VALID_QUESTIONS), "rft-valid.jsonl")


def _reinforcement(grader: dict, **hyperparameters) -> dict:
    return {"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": hyperparameters}}


def _answer(client, model: str, question: str) -> str:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          temperature=0, max_tokens=8).choices[0].message.content


def test_reinforcement_job_raises_the_reward_of_its_grader(client, rft_files):
    train, valid = rft_files
    assert train.model_extra is None or "data_format" not in (train.model_extra or {})
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, validation_file=valid.id, seed=3,
                                         method=_reinforcement(CLOSE, **HYPERPARAMETERS))
    assert job.method.type == "reinforcement" and job.method.reinforcement.grader.evaluation_metric == "fuzzy_match"
    assert job.method.reinforcement.hyperparameters.compute_multiplier == 2
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded", done.error
    assert done.method.reinforcement.grader.name == CLOSE["name"]  # the grader is echoed, strict mode reads it

    events = metrics_events(client, job.id)
    assert [event.data["step"] for event in events] == list(range(1, 31))
    start = events[0].data["valid_mean_reward_start"]
    validated = {event.data["step"]: event.data["valid_mean_reward"] for event in events
                 if "valid_mean_reward" in event.data}
    assert sorted(validated) == [10, 20, 30]
    assert validated[30] > start + 0.2, (start, validated)
    assert "mean reward=" in events[0].message and "validation mean reward=" in events[-1].message
    assert all(event.data["train_kl"] >= 0 and 0 <= event.data["train_mean_reward"] <= 1 for event in events)
    samples_per_second = sum(e.data["train_samples_per_second"] for e in events) / len(events)
    MEASUREMENTS.append(f"RFT on gxft/tiny-chat: validation reward {start:.3f} before, {validated[30]:.3f} after 30 "
                        f"steps; {samples_per_second:.0f} samples/s (sampling, grading and scoring)")

    csv_file = next(f for f in done.result_files if client.files.retrieve(f).filename == "step_metrics.csv")
    rows = list(csv.DictReader(io.StringIO(base64.b64decode(client.files.content(csv_file).read()).decode())))
    assert len(rows) == 30 and {"train_mean_reward", "train_kl", "valid_mean_reward"} <= set(rows[0])
    assert float(rows[-1]["valid_mean_reward"]) == pytest.approx(validated[30], abs=1e-5)

    # Served, the fine-tuned model's answers score higher with the same grader than the base model's.
    def score(model: str) -> float:
        return sum(client.fine_tuning.alpha.graders.run(grader=CLOSE, model_sample=_answer(client, model, q),
                                                        item={"answer": "Paris"}).reward
                   for q in VALID_QUESTIONS) / len(VALID_QUESTIONS)

    base, tuned = score(TINY), score(done.fine_tuned_model)
    MEASUREMENTS.append(f"RFT on gxft/tiny-chat, served greedily: grader reward {base:.3f} (base), {tuned:.3f} (tuned)")
    assert tuned > base + 0.2, (base, tuned)


def test_multi_grader_parts_are_reported_and_an_rft_job_pauses_and_resumes(start_server):
    # A server of its own: a job whose multi grader holds several graders (the guide's form) is echoed as
    # sent, which OpenAI's SDK (typing one grader) refuses in strict mode, also in every list of jobs.
    # A lenient client: "paused" is missing from the SDK's status enum too.
    server = start_server(worker=True)
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
    train = processed(client, prompts(TRAIN_QUESTIONS), "rft-train.jsonl")
    short = {"type": "python", "name": "short",
             "source": "def grade(sample, item):\n    return 1.0 if len(sample['output_text']) <= 12 else 0.0\n"}
    judge = {"type": "label_model", "name": "judge", "model": TINY, "labels": ["yes", "no"], "passing_labels": ["yes"],
             "input": [{"role": "user", "content": "Is '{{sample.output_text}}' the answer {{item.answer}}?"}]}
    multi = {"type": "multi", "name": "mix", "graders": {"close": CLOSE, "short": short, "judge": judge},
             "calculate_output": "0.6 * close + 0.3 * short + 0.1 * judge"}
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, method=_reinforcement(
        multi, n_epochs=8, batch_size=4, max_completion_tokens=6))
    wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"] >= 4, timeout=120)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    wait_for(lambda: any(e.message.startswith("The job was paused at step") for e in all_events(client, job.id)))
    paused_at = client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"]
    client.fine_tuning.jobs.resume(job.id)
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded", done.error
    events = metrics_events(client, job.id)
    assert [event.data["step"] for event in events] == list(range(1, 25))
    assert any(e.message == f"Fine-tuning job resumed from step {paused_at}" for e in all_events(client, job.id))
    for event in events:
        parts = {name: event.data[f"train_reward_{name}"] for name in ("close", "short", "judge")}
        assert event.data["train_grading_errors"] == 0  # the label_model grader reached its model each time
        assert event.data["train_mean_reward"] == pytest.approx(
            0.6 * parts["close"] + 0.3 * parts["short"] + 0.1 * parts["judge"], abs=1e-4)


def test_reinforcement_data_is_validated_with_line_numbers(client):
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}], "answer": "a"} for i in range(12)]
    rows[4] = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "answer": "a"}
    rows[7] = {"messages": [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "q",
                                                                           "weight": 0}]}
    created = client.files.create(file=("rft.jsonl", jsonl(rows)), purpose="fine-tune")
    checked = client.files.wait_for_processing(created.id, poll_interval=0.05)
    assert checked.status == "error"
    assert 'line 5: "messages" must end with a user turn' in checked.status_details
    assert 'line 8: messages[1] has a "weight"' in checked.status_details


def test_reinforcement_mistakes_are_refused_at_create(client, rft_files):
    train, _ = rft_files
    chat = processed(client, jsonl({"messages": [{"role": "user", "content": f"q{i}"},
                                                 {"role": "assistant", "content": "a"}]} for i in range(12)))

    def refusal(training_file=train.id, **method) -> openai.APIStatusError:
        return _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=training_file, method=method))

    error = refusal(type="reinforcement", reinforcement={})
    assert error.param == "method.reinforcement.grader" and "needs method.reinforcement.grader" in error.message
    error = refusal(type="reinforcement", reinforcement={"grader": {**CLOSE, "evaluation_metric": "cosine"}})
    assert error.param == "method.reinforcement.grader.evaluation_metric" and "embedding model" in error.message
    error = refusal(type="reinforcement", reinforcement={"grader": {**CLOSE, "evaluation_metric": "jaccard"}})
    assert error.param == "method.reinforcement.grader.evaluation_metric"
    error = refusal(type="reinforcement", reinforcement={"grader": {"type": "python", "name": "p", "source": "x"}})
    assert error.param == "method.reinforcement.grader.source"
    error = refusal(training_file=chat.id, type="reinforcement", reinforcement={"grader": CLOSE})
    assert error.param == "training_file" and "reinforcement files" in error.message
    error = refusal(type="supervised")
    assert error.param == "training_file" and "reinforcement format" in error.message
    error = refusal(type="reinforcement", reinforcement={"grader": CLOSE, "hyperparameters": {"eval_samples": 0}})
    assert error.param == "method.reinforcement.hyperparameters.eval_samples"
    error = refusal(type="reinforcement", reinforcement={"grader": CLOSE, "rubric": "x"})
    assert error.param == "method.reinforcement.rubric"
    error = refusal(training_file=chat.id, type="supervised", supervised={"hyperparameters": {"compute_multiplier": 2}})
    assert error.param == "method.supervised.hyperparameters.compute_multiplier"
    assert "belongs to the reinforcement method" in error.message


# SmolLM2 answers in long sentences that its 16-token budget cuts off; this grader wants one short,
# finished sentence, a format the base model keeps about half the time.
FORMAT_GRADER = {"type": "python", "name": "short sentence", "source": (
    "def grade(sample, item):\n"
    "    text = sample['output_text'].strip()\n"
    "    return 1.0 if 2 <= len(text.split()) <= 12 and text.endswith(('.', '!', '?')) else 0.0\n")}
REAL_TRAIN = ["What is the capital of France?", "What color is the sky on a clear day?",
              "How many legs does a dog have?", "What is the largest planet?", "Who wrote Hamlet?",
              "What is frozen water called?", "What is the opposite of hot?", "What do bees make?",
              "What language is spoken in Spain?", "Which season is the coldest?"]
REAL_VALID = ["What is the capital of Italy?", "What color is grass?", "What is the capital of Japan?",
              "Which planet is known as the red planet?", "What is the opposite of up?",
              "What do cows give us to drink?"]
REAL_HELD_OUT = [*REAL_VALID, "What is the capital of Spain?", "What animal says meow?",
                 "What is the boiling point of water in Celsius?", "How many days are in a week?"]


def _follows_format(text: str) -> bool:
    text = text.strip()
    return 2 <= len(text.split()) <= 12 and text.endswith((".", "!", "?"))


def test_smollm2_learns_a_format_from_a_python_grader(readme_server):
    from conftest import SMOLLM2

    client = readme_server.client()
    train = processed(client, jsonl({"messages": [{"role": "user", "content": q}]} for q in REAL_TRAIN))
    valid = processed(client, jsonl({"messages": [{"role": "user", "content": q}]} for q in REAL_VALID))
    job = client.fine_tuning.jobs.create(model=SMOLLM2, training_file=train.id, validation_file=valid.id, seed=3,
                                         method=_reinforcement(FORMAT_GRADER, n_epochs=2, batch_size=2,
                                                               learning_rate_multiplier=10, eval_interval=5,
                                                               eval_samples=2, max_completion_tokens=16))
    done = wait_done(client, job.id, patience=600)
    assert done.status == "succeeded", done.error
    events = metrics_events(client, job.id)
    start = events[0].data["valid_mean_reward_start"]
    end = events[-1].data["valid_mean_reward"]
    assert end > start, (start, end)

    def answers(model: str) -> list[str]:
        return [client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}],
                                               temperature=0, max_tokens=16).choices[0].message.content
                for q in REAL_HELD_OUT]

    base, tuned = answers(SMOLLM2), answers(done.fine_tuned_model)
    base_count, tuned_count = sum(map(_follows_format, base)), sum(map(_follows_format, tuned))
    samples_per_second = sum(e.data["train_samples_per_second"] for e in events) / len(events)
    MEASUREMENTS.append(
        f"RFT on SmolLM2 (python grader, one short finished sentence): validation reward {start:.3f} before, "
        f"{end:.3f} after {len(events)} steps; served greedily on {len(REAL_HELD_OUT)} held-out prompts, "
        f"{base_count} (base) and {tuned_count} (tuned) answers in the format; {samples_per_second:.2f} samples/s")
    assert tuned_count > base_count, (base, tuned)


def test_a_grader_that_fails_on_every_answer_fails_the_job_with_its_reason(client, rft_files):
    train, _ = rft_files
    broken = {"type": "python", "name": "broken", "source": "def grade(sample, item):\n    return item['score']\n"}
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, method=_reinforcement(
        broken, n_epochs=1, max_completion_tokens=4))
    done = wait_done(client, job.id)
    assert done.status == "failed" and done.error.code == "grader_failed" and done.error.param == "method"
    assert "python_grader_runtime_error" in done.error.message and "KeyError: 'score'" in done.error.message
