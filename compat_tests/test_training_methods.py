"""Training methods beyond plain SFT, through the strict openai client against a real server and worker:
DPO on preference files, QLoRA (refused without a GPU, trained on one), continuing from a fine-tuned
model, and chat data with tools."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.test_files import jsonl, processed
from compat_tests.test_fine_tuning import TINY, TINY_PATH, _error, metrics_events, wait_done, wait_for

PAIRS = [(f"What is {i} plus {i}?", f"It is {2 * i}.", f"It might be {2 * i + 1}, or not.") for i in range(10)]
CUDA = torch.cuda.is_available()


def preference_row(question: str, preferred: str, rejected: str) -> dict:
    return {
        "input": {"messages": [{"role": "user", "content": question}]},
        "preferred_output": [{"role": "assistant", "content": preferred}],
        "non_preferred_output": [{"role": "assistant", "content": rejected}],
    }


def dpo_method(**hyperparameters) -> dict:
    return {"type": "dpo", "dpo": {"hyperparameters": hyperparameters}}


@pytest.fixture(scope="module")
def preference_file(server):
    return processed(server.client(), jsonl(preference_row(*pair) for pair in PAIRS), "preferences.jsonl")


@pytest.fixture(scope="module")
def chat_file(server):
    return processed(server.client(), (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())


def answer_logp(model, tokenizer, question: str, answer: str) -> float:
    """log p(answer | question) under the chat template: plain transformers, independent of the worker's code."""
    messages = [{"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        logps = model(torch.tensor([ids])).logits[0, :-1].float().log_softmax(-1)
    return sum(float(logps[position - 1, ids[position]]) for position in range(len(prompt_ids), len(ids)))


def margins(model, tokenizer) -> list[float]:
    """Per training pair: log p(preferred) - log p(rejected)."""
    return [answer_logp(model, tokenizer, q, good) - answer_logp(model, tokenizer, q, bad) for q, good, bad in PAIRS]


def load_fine_tuned(client, model_name: str, folder: Path):
    """The checkpoint's files as a user downloads them, loaded with transformers (and peft for an adapter)."""
    from transformers import AutoModelForCausalLM

    checkpoint = next(
        c for job in client.fine_tuning.jobs.list(limit=100) if job.fine_tuned_model == model_name
        for c in client.fine_tuning.jobs.checkpoints.list(job.id) if c.fine_tuned_model_checkpoint == model_name
    )
    folder.mkdir()
    for file_id in checkpoint.model_extra["result_files"]:
        file = client.files.retrieve(file_id)
        (folder / file.filename).write_bytes(client.files.content(file_id).read())
    if (folder / "adapter_config.json").exists():
        from peft import PeftModel

        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY_PATH), folder).eval()
    return AutoModelForCausalLM.from_pretrained(folder).eval()


# DPO


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_dpo_widens_the_margin_of_preferred_answers(client, preference_file, tmp_path, lora):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=preference_file.id, seed=0, suffix="dpo",
        method=dpo_method(beta=0.1, n_epochs=3, batch_size=2, learning_rate_multiplier=10, lora=lora),
    )
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.1
    assert job.hyperparameters.n_epochs == 3
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded", done.error
    assert done.method.dpo.hyperparameters.beta == 0.1 and done.model_extra["total_steps"] == 15

    metrics = metrics_events(client, job.id)
    assert len(metrics) == 15
    assert {"train_loss", "train_reward_margin", "train_reward_accuracy"} <= set(metrics[-1].data)
    assert "reward margin=" in metrics[-1].message
    assert metrics[0].data["train_loss"] == pytest.approx(0.6931, abs=0.01)  # policy == reference at step 1
    assert metrics[-1].data["train_reward_margin"] > 0 and metrics[-1].data["train_loss"] < 0.69

    tokenizer = AutoTokenizer.from_pretrained(TINY_PATH)
    before = margins(AutoModelForCausalLM.from_pretrained(TINY_PATH).eval(), tokenizer)
    after = margins(load_fine_tuned(client, done.fine_tuned_model, tmp_path / "model"), tokenizer)
    grown = [b < a for b, a in zip(before, after, strict=True)]
    assert all(grown), (before, after)
    # Measured: +17 nats on average with LoRA, +35 with all weights (the base margin is ~45).
    assert sum(after) / len(after) - sum(before) / len(before) > 5


def test_method_and_file_format_must_match(client, preference_file, chat_file):
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=chat_file.id,
                                                          method=dpo_method()))
    assert error.status_code == 400 and error.code == "invalid_training_file" and error.param == "training_file"
    assert "chat format" in error.message and "preference files" in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=preference_file.id))
    assert error.code == "invalid_training_file" and 'method {"type": "dpo"}' in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=TINY, training_file=preference_file.id, validation_file=chat_file.id, method=dpo_method()))
    assert error.param == "validation_file"
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=TINY, training_file=chat_file.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"beta": 0.1}}}))
    assert error.param == "method.supervised.hyperparameters.beta" and "dpo and reinforcement method" in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=TINY, training_file=preference_file.id, method=dpo_method(beta=3)))
    assert error.param == "method.dpo.hyperparameters.beta" and "<= 2" in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=TINY, training_file=preference_file.id, method={"type": "dpo"}, hyperparameters={"n_epochs": 1}))
    assert error.param == "hyperparameters" and "method.dpo.hyperparameters" in error.message


# QLoRA


@pytest.mark.skipif(CUDA, reason="the refusal is for machines without a CUDA GPU")
def test_qlora_is_refused_without_a_gpu(client, chat_file):
    def refusal():
        return _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=chat_file.id,
                                                             hyperparameters={"quantization": "nf4"}))

    # Until the embedded worker's first heartbeat (it imports torch first) the server knows no worker at all.
    error = wait_for(lambda: (error := refusal()) and "1 worker(s) connected" in error.message and error)
    assert error.status_code == 400 and error.code == "gpu_required"
    assert error.param == "hyperparameters.quantization"
    assert "needs a worker with a CUDA GPU" in error.message and "0 with a CUDA GPU" in error.message
    model = client.models.retrieve(TINY)
    assert model.model_extra["fine_tuning"] == {"methods": ["supervised", "dpo", "reinforcement"],
                                                "quantization": []}
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=TINY, training_file=chat_file.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"quantization": "nf4", "lora": False}}}))
    assert error.param == "method.supervised.hyperparameters.quantization" and '"lora": false' in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=chat_file.id,
                                                          hyperparameters={"quantization": "int8"}))
    assert 'one of "nf4"' in error.message


@pytest.mark.skipif(not CUDA, reason="QLoRA needs a CUDA GPU")
def test_qlora_job_trains_on_the_gpu_and_serves(server, client, chat_file):
    wait_for(lambda: client.models.retrieve(TINY).model_extra["fine_tuning"]["quantization"] == ["nf4"], timeout=60)
    job = client.fine_tuning.jobs.create(model=TINY, training_file=chat_file.id, seed=0,
                                         hyperparameters={"quantization": "nf4", "n_epochs": 2})
    done = wait_done(client, job.id, patience=300)
    assert done.status == "succeeded", done.error
    assert done.hyperparameters.model_extra["quantization"] == "nf4"
    answer = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=5,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content is not None


# Continuing from a fine-tuned model


def first_loss(client, job_id: str) -> float:
    return metrics_events(client, job_id)[0].data["train_loss"]


def last_loss(client, job_id: str) -> float:
    return metrics_events(client, job_id)[-1].data["train_loss"]


@pytest.fixture(scope="module")
def parent_lora(server, chat_file):
    client = server.client()
    job = client.fine_tuning.jobs.create(model=TINY, training_file=chat_file.id, seed=1, suffix="parent",
                                         hyperparameters={"n_epochs": 3, "lora_r": 4})
    done = wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    return done


def test_continue_training_a_fine_tuned_adapter(client, chat_file, parent_lora):
    parent_name = parent_lora.fine_tuned_model
    job = client.fine_tuning.jobs.create(model=parent_name, training_file=chat_file.id, seed=2, suffix="child",
                                         hyperparameters={"n_epochs": 1})
    assert job.model == parent_name and job.model_extra["from_checkpoint"] == {"type": "ft"}
    done = wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    # The same adapter trains further: its rank is the parent's, and it starts where the parent ended.
    assert done.hyperparameters.model_extra["lora_r"] == 4
    assert first_loss(client, job.id) < first_loss(client, parent_lora.id) - 0.5
    assert first_loss(client, job.id) == pytest.approx(last_loss(client, parent_lora.id), abs=0.6)
    assert done.fine_tuned_model.startswith(f"ft:{TINY}:personal:child:")

    listed = {model.id: model for model in client.models.list()}
    child = listed[done.fine_tuned_model]
    assert child.model_extra["parent"] == parent_name and child.model_extra["root"] == TINY
    assert listed[parent_name].model_extra["parent"] == TINY
    assert client.models.retrieve(done.fine_tuned_model).model_extra["parent"] == parent_name
    assert listed[TINY].model_extra["root"] == TINY and listed[TINY].model_extra["parent"] is None
    answer = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=4,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.model == done.fine_tuned_model


def test_nebius_from_checkpoint_and_checkpoint_names(client, chat_file, parent_lora):
    step_checkpoint = min(client.fine_tuning.jobs.checkpoints.list(parent_lora.id), key=lambda c: c.step_number)
    assert ":ckpt-step-" in step_checkpoint.fine_tuned_model_checkpoint
    job = client.fine_tuning.jobs.create(
        model=step_checkpoint.fine_tuned_model_checkpoint, training_file=chat_file.id,
        hyperparameters={"n_epochs": 1}, extra_body={"from_checkpoint": {"type": "ft"}},
    )
    assert job.model == step_checkpoint.fine_tuned_model_checkpoint
    assert job.model_extra["from_checkpoint"] == {"type": "ft"}
    assert wait_done(client, job.id).status == "succeeded"


def test_continue_training_with_dpo_after_sft(client, preference_file, parent_lora):
    job = client.fine_tuning.jobs.create(model=parent_lora.fine_tuned_model, training_file=preference_file.id,
                                         method=dpo_method(n_epochs=1, batch_size=5))
    done = wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    # The reference model of DPO is the starting (SFT) model, so the first step's loss is log 2.
    assert first_loss(client, job.id) == pytest.approx(0.6931, abs=0.01)


def test_continue_from_full_weights_and_merge_an_adapter(client, chat_file, parent_lora):
    full = wait_done(client, client.fine_tuning.jobs.create(
        model=TINY, training_file=chat_file.id, seed=3, hyperparameters={"n_epochs": 2, "lora": False}).id)
    assert full.status == "succeeded", full.error
    error = _error(lambda: client.fine_tuning.jobs.create(model=full.fine_tuned_model, training_file=chat_file.id,
                                                          hyperparameters={"lora": True}))
    assert error.param == "hyperparameters.lora" and "fully fine-tuned" in error.message
    child = client.fine_tuning.jobs.create(model=full.fine_tuned_model, training_file=chat_file.id,
                                           hyperparameters={"n_epochs": 1})
    assert child.hyperparameters.model_extra["lora"] is False
    done = wait_done(client, child.id)
    assert done.status == "succeeded", done.error
    assert first_loss(client, child.id) < first_loss(client, full.id) - 0.5
    # An adapter folded into the base, then every weight trained: the result is a full model.
    merged = wait_done(client, client.fine_tuning.jobs.create(
        model=parent_lora.fine_tuned_model, training_file=chat_file.id,
        hyperparameters={"n_epochs": 1, "lora": False}).id)
    assert merged.status == "succeeded", merged.error
    assert first_loss(client, merged.id) < first_loss(client, parent_lora.id) - 0.5
    export = client.post(f"/models/{merged.fine_tuned_model}/export", cast_to=object, body={})
    assert "model.safetensors" in {file["filename"] for file in export["files"]}


def test_continue_training_errors(client, chat_file, parent_lora):
    name = parent_lora.fine_tuned_model
    error = _error(lambda: client.fine_tuning.jobs.create(model=name, training_file=chat_file.id,
                                                          hyperparameters={"lora_r": 16}))
    assert error.param == "hyperparameters.lora_r" and "lora_r 4" in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=chat_file.id,
                                                          extra_body={"from_checkpoint": {"type": "ft"}}))
    assert error.param == "from_checkpoint" and "is a base model" in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=name, training_file=chat_file.id, extra_body={"from_checkpoint": {"type": "hf", "repo": "x/y"}}))
    assert error.param == "from_checkpoint.repo" and "gxft models import x/y" in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(model=name + "x", training_file=chat_file.id))
    assert error.code == "model_not_available" and "fine-tuned models" in error.message


def test_child_of_a_deleted_model_fails_with_a_reason(start_server):
    server = start_server(worker=False)
    client = server.client()
    train = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    env = {**os.environ, "GXFT_WORKER_TOKEN": (server.data_dir / "worker_token").read_text(),
           "GXFT_DATA_DIR": str(server.data_dir)}

    def run_worker_until(predicate):
        worker = subprocess.Popen([sys.executable, "-m", "gxft", "worker", "--server", server.base_url], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return wait_for(predicate, timeout=90)
        finally:
            worker.terminate()
            worker.wait()

    parent = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1})
    parent = run_worker_until(lambda: wait_done(client, parent.id))
    assert parent.status == "succeeded", parent.error
    child = client.fine_tuning.jobs.create(model=parent.fine_tuned_model, training_file=train.id)
    assert client.models.delete(parent.fine_tuned_model).deleted
    done = run_worker_until(lambda: wait_done(client, child.id))
    assert done.status == "failed" and done.error.code == "model_not_available"
    assert f"The model {parent.fine_tuned_model} that this job continues from has been deleted" in done.error.message


# Tool calling

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}}]


def tool_row(city: str) -> dict:
    return {
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": f"What is the weather in {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C and sunny"},
            {"role": "assistant", "content": f"It is 18 C and sunny in {city}."},
        ],
    }


CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Tokyo", "Quito", "Bern", "Riga", "Doha"]


def test_tool_calling_data_trains_through_the_chat_template(client):
    with_tools = processed(client, jsonl(tool_row(city) for city in CITIES), "tools.jsonl")
    without = processed(client, jsonl({**tool_row(city), "tools": []} for city in CITIES), "no-tools.jsonl")
    jobs = [client.fine_tuning.jobs.create(model=TINY, training_file=f.id, seed=0, hyperparameters={"n_epochs": 1})
            for f in (with_tools, without)]
    done = [wait_done(client, job.id) for job in jobs]
    assert all(job.status == "succeeded" for job in done), [job.error for job in done]
    # The tool definitions are rendered into every sequence (the template's system turn).
    assert done[0].trained_tokens > done[1].trained_tokens + 10 * 20


def test_template_that_cannot_render_tools_is_refused(start_server, tmp_path):
    plain = tmp_path / "plain-chat"
    shutil.copytree(TINY_PATH, plain)
    # A template with no notion of tools: it renders roles and text only.
    (plain / "chat_template.jinja").write_text(
        "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content or '' }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    registry = tmp_path / "registry.toml"
    registry.write_text(f'[[models]]\nid = "plain/chat"\npath = "{plain}"\n')
    server = start_server(env={"GXFT_MODELS_FILE": str(registry)}, worker=True)
    client = server.client()
    rows = [{"messages": tool_row(city)["messages"][:1] + [{"role": "assistant", "content": "Sure."}]}
            for city in CITIES[:5]] + [tool_row(city) for city in CITIES[5:]]
    training = processed(client, jsonl(rows), "tools.jsonl")
    done = wait_done(client, client.fine_tuning.jobs.create(model="plain/chat", training_file=training.id).id)
    assert done.status == "failed"
    assert done.error.code == "invalid_training_file" and done.error.param == "training_file"
    assert "line 6: the model's chat template cannot render tools" in done.error.message
