"""Fine-tuning jobs end to end: the strict openai client, a real server and a real worker training gxft/tiny-chat."""

import base64
import csv
import io
import json
import os
import time

import httpx2
import openai
import pytest

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.test_files import chat_line, jsonl, processed

TINY = "gxft/tiny-chat"
TINY_PATH = SAMPLE_DATA / "models" / "tiny-chat"
TERMINAL = ("succeeded", "failed", "cancelled")


def wait_for(predicate, timeout: float = 60, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def wait_for_job(client, job_id: str, condition, patience: float = 60, interval: float = 0.1):
    """Until `condition(job)` holds. It fails only after `patience` seconds in which the job neither trained a
    step nor changed status, so that a slow, loaded machine is slow, not red, while a stuck job still fails."""
    progress, since = None, time.monotonic()
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if value := condition(job):
            return value
        now = (job.status, (job.model_extra or {}).get("trained_steps"))
        if now != progress:
            progress, since = now, time.monotonic()
        elif time.monotonic() - since > patience:
            raise AssertionError(f"job {job_id} made no progress for {patience} s (status, step: {now})")
        time.sleep(interval)


def wait_done(client, job_id: str, patience: float = 60):
    return wait_for_job(client, job_id, lambda job: job.status in TERMINAL and job, patience)


def all_events(client, job_id: str) -> list:
    """Oldest first."""
    return list(reversed(list(client.fine_tuning.jobs.list_events(job_id, limit=100))))


def metrics_events(client, job_id: str) -> list:
    return [e for e in all_events(client, job_id) if e.type == "metrics"]


@pytest.fixture(scope="module")
def sample_files(server):
    client = server.client()
    with open(SAMPLE_DATA / "sample_training_data.jsonl", "rb") as train, \
            open(SAMPLE_DATA / "sample_validation_data.jsonl", "rb") as valid:
        train_file = client.files.create(file=train, purpose="fine-tune")
        valid_file = client.files.create(file=valid, purpose="fine-tune")
    return (client.files.wait_for_processing(train_file.id, poll_interval=0.05),
            client.files.wait_for_processing(valid_file.id, poll_interval=0.05))


def test_lora_job_trains_to_success(client, sample_files, tmp_path):
    train, valid = sample_files
    started = time.monotonic()
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id, validation_file=valid.id, suffix="demo", seed=7,
        hyperparameters={"n_epochs": 3, "lora": True, "lora_r": 8}, metadata={"team": "compat"},
    )
    assert job.id.startswith("ftjob-") and job.status == "queued"
    assert job.hyperparameters.n_epochs == 3 and job.hyperparameters.batch_size == "auto"
    assert job.method.type == "supervised" and job.metadata == {"team": "compat"}
    done = wait_done(client, job.id)
    assert time.monotonic() - started < 60
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:{TINY}:personal:demo:{done.fine_tuned_model.rsplit(':', 1)[1]}"
    assert done.hyperparameters.batch_size == 1 and done.hyperparameters.learning_rate_multiplier == 1.0
    assert done.finished_at and done.trained_tokens > 0 and done.error is None
    assert done.model_extra["trained_steps"] == done.model_extra["total_steps"] == 30

    events = all_events(client, job.id)
    messages = [e.message for e in events]
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    assert messages[1] == f"Validating training file: {train.id} and validation file: {valid.id}"
    assert messages[2] == "Files validated, moving job to queued state"
    assert messages[3] == "Fine-tuning job started"
    assert messages[-2] == f"New fine-tuned model created: {done.fine_tuned_model}"
    assert messages[-1] == "The job has successfully completed"
    metrics = [e for e in events if e.type == "metrics"]
    assert [e.data["step"] for e in metrics] == list(range(1, 31))
    assert metrics[0].message.startswith("Step 1/30: training loss=")
    assert all({"step", "total_steps", "train_loss", "train_mean_token_accuracy"} <= set(e.data) for e in metrics)
    assert "valid_loss" in metrics[9].data and "valid_mean_token_accuracy" in metrics[29].data
    losses = [e.data["train_loss"] for e in metrics]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5, losses

    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in checkpoints] == [30, 20, 10]
    assert checkpoints[0].fine_tuned_model_checkpoint == done.fine_tuned_model
    assert checkpoints[1].fine_tuned_model_checkpoint.endswith(":ckpt-step-20")
    assert checkpoints[0].metrics.train_loss == metrics[-1].data["train_loss"]

    adapter_dir = tmp_path / "adapter"
    adapter_dir.mkdir()
    for file_id in checkpoints[0].model_extra["result_files"]:
        info = client.files.retrieve(file_id)
        assert info.purpose == "fine-tune-results"
        client.files.content(file_id).write_to_file(adapter_dir / info.filename)
    assert {p.name for p in adapter_dir.iterdir()} == {"adapter_config.json", "adapter_model.safetensors"}
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 8 and not config.get("modules_to_save") and not config.get("use_dora")
    assert config["base_model_name_or_path"] == TINY  # the registry id, not the server's folder

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY_PATH), adapter_dir)
    assert any("lora_A" in name for name, _ in model.named_parameters())

    single = client.fine_tuning.jobs.checkpoints.list(job.id).data[1]
    fetched = httpx2.get(f"{client.base_url}fine_tuning/jobs/{job.id}/checkpoints/{single.id}",
                         headers={"Authorization": "Bearer k"}).json()
    assert fetched["id"] == single.id and fetched["step_number"] == 20

    (result_file,) = done.result_files
    content = base64.b64decode(client.files.content(result_file).read()).decode()
    rows = list(csv.DictReader(io.StringIO(content)))
    assert list(rows[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
    assert len(rows) == 30 and float(rows[-1]["train_loss"]) == pytest.approx(losses[-1], rel=1e-4)


def test_full_fine_tuning_checkpoint_loads_with_transformers(client, sample_files, tmp_path):
    train, _ = sample_files
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1, "lora": False, "batch_size": 2}
    )
    done = wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    (checkpoint,) = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoint.step_number == 5
    target = tmp_path / "full"
    target.mkdir()
    for file_id in checkpoint.model_extra["result_files"]:
        client.files.content(file_id).write_to_file(target / client.files.retrieve(file_id).filename)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(target)
    tokenizer = AutoTokenizer.from_pretrained(target)
    assert model.config.num_hidden_layers == 4 and tokenizer.eos_token == "<|im_end|>"


def test_same_seed_gives_same_losses(client, sample_files):
    train, _ = sample_files
    losses = []
    for _ in range(2):
        job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, seed=42,
                                             hyperparameters={"n_epochs": 1})
        assert wait_done(client, job.id).status == "succeeded"
        losses.append([e.data["train_loss"] for e in metrics_events(client, job.id)])
    assert losses[0] == losses[1] and len(losses[0]) == 10


@pytest.mark.parametrize(
    "row",
    [
        {"prompt": "The capital of France is", "completion": " Paris."},
        {"text": "Paris is the capital and largest city of France."},
        {"instruction": "Name the capital of France.", "output": "Paris."},
    ],
    ids=["prompt-completion", "text", "alpaca"],
)
def test_other_formats_train(client, row):
    train = processed(client, jsonl([row] * 10))
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1})
    assert wait_done(client, job.id).status == "succeeded"


def test_weight_zero_turns_are_not_trained(client):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x", "weight": 0}]}] * 10
    job = client.fine_tuning.jobs.create(model=TINY, training_file=processed(client, jsonl(rows)).id)
    done = wait_done(client, job.id)
    assert done.status == "failed"
    assert done.error.code == "invalid_training_file" and "weight 0" in done.error.message
    assert all_events(client, job.id)[-1].level == "error"


def _error(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize(
    "hyperparameters, param, words",
    [
        ({"n_epoch": 3}, "hyperparameters.n_epoch", "Unknown hyperparameter 'n_epoch'"),
        ({"batch_size": 0}, "hyperparameters.batch_size", "an integer >= 1 and <= 256"),
        ({"n_epochs": 0}, "hyperparameters.n_epochs", "an integer >= 1 and <= 50"),
        ({"learning_rate": 0}, "hyperparameters.learning_rate", "a number > 0"),
        ({"learning_rate_multiplier": -1}, "hyperparameters.learning_rate_multiplier", "a number > 0"),
        ({"lora_r": 0}, "hyperparameters.lora_r", "an integer >= 1"),
        ({"warmup_ratio": 1.5}, "hyperparameters.warmup_ratio", "a number >= 0 and <= 1"),
        ({"lora_dropout": 1}, "hyperparameters.lora_dropout", "a number >= 0 and < 1"),
        ({"max_grad_norm": 0}, "hyperparameters.max_grad_norm", "a number > 0"),
        ({"context_length": 999999}, "hyperparameters.context_length", "<= 2048"),
        ({"lora": "yes"}, "hyperparameters.lora", "true or false"),
        ({"batch_size": 2.5}, "hyperparameters.batch_size", "an integer"),
        ({"learning_rate": 1e-4, "learning_rate_multiplier": 2}, "hyperparameters.learning_rate",
         "either learning_rate or learning_rate_multiplier"),
    ],
)
def test_out_of_range_hyperparameters_are_400(client, sample_files, hyperparameters, param, words):
    train, _ = sample_files
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                                          hyperparameters=hyperparameters))
    assert error.status_code == 400 and error.param == param and words in error.message


def test_method_dialect_and_nebius_dialect(client, sample_files):
    train, _ = sample_files
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 5,
                                                                          "learning_rate_multiplier": 2}}},
    )
    assert job.method.supervised.hyperparameters.batch_size == 5
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"epochs": 1}}}))
    assert error.param == "method.supervised.hyperparameters.epochs"
    nebius = client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id,
        hyperparameters={"n_epochs": 1, "batch_size": 5, "learning_rate": 1e-3, "warmup_ratio": 0.1,
                         "weight_decay": 0.01, "lora": True, "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.05,
                         "packing": False, "max_grad_norm": 0.5, "context_length": 512},
    )
    done = wait_done(client, nebius.id)
    assert done.status == "succeeded", done.error
    assert done.hyperparameters.model_extra["learning_rate"] == 1e-3
    assert done.hyperparameters.model_extra["context_length"] == 512
    assert done.hyperparameters.learning_rate_multiplier == pytest.approx(1e-3 / 3e-3, rel=1e-3)
    assert wait_done(client, job.id).status == "succeeded"


def test_create_errors(server, client, sample_files):
    train, valid = sample_files
    error = _error(lambda: client.fine_tuning.jobs.create(model="gpt-unknown", training_file=train.id))
    assert error.status_code == 400 and error.param == "model" and TINY in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file="file-nope"))
    assert error.status_code == 400 and error.param == "training_file"
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                                          validation_file="file-nope"))
    assert error.param == "validation_file"
    other = client.files.create(file=("x.bin", b"x"), purpose="user_data")
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=other.id))
    assert "purpose 'fine-tune'" in error.message
    bad = processed(client, (SAMPLE_DATA / "invalid" / "bad_lines.jsonl").read_bytes())
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=bad.id))
    assert error.param == "training_file" and bad.status_details in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=valid.id))
    assert error.code == "invalid_n_examples"
    assert "has 5 example(s), but a training file must have at least 10" in error.message
    preference = processed(client, jsonl([{
        "input": {"messages": [{"role": "user", "content": "Hi"}]},
        "preferred_output": [{"role": "assistant", "content": "Hello"}],
        "non_preferred_output": [{"role": "assistant", "content": "Go"}]}] * 10))
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=preference.id))
    assert "preference format" in error.message
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                                          method={"type": "reinforcement_learning"}))
    assert error.param == "method.type"
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=train.id, suffix="x" * 65))
    assert error.param == "suffix"
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=train.id, seed=-1))
    assert error.param == "seed"
    error = _error(lambda: client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id, extra_body={"epochs": 3}))
    assert error.status_code == 400 and "epochs" in error.message
    headers = {"Authorization": "Bearer k", "Content-Type": "application/json"}
    response = httpx2.post(server.base_url + "/v1/fine_tuning/jobs", headers=headers, content=b"{not json")
    assert response.status_code == 422 and response.json()["error"]["message"].startswith("The request body is not")
    response = httpx2.post(server.base_url + "/v1/fine_tuning/jobs", headers=headers, content=b'{"model": 3}')
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    error = _error(lambda: client.fine_tuning.jobs.retrieve("ftjob-nope"))
    assert error.status_code == 404


def test_file_still_processing_is_not_ready(client):
    rows = jsonl(chat_line(i) for i in range(400_000))
    created = client.files.create(file=("big.jsonl", rows), purpose="fine-tune")
    error = _error(lambda: client.fine_tuning.jobs.create(model=TINY, training_file=created.id))
    assert error.status_code == 400 and error.code == "file_not_ready" and "not ready" in error.message
    assert client.files.wait_for_processing(created.id, poll_interval=0.1).status == "processed"


def test_cancel_stops_a_running_job_and_frees_the_worker(client, sample_files):
    train, _ = sample_files
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 50})
    wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"] >= 3)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    time.sleep(1.5)
    steps_after = len(metrics_events(client, job.id))
    time.sleep(1.0)
    assert len(metrics_events(client, job.id)) == steps_after < 500
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    assert any(e.message == "The job was cancelled" for e in all_events(client, job.id))
    error = _error(lambda: client.fine_tuning.jobs.cancel(job.id))
    assert error.status_code == 400
    after = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1})
    assert wait_done(client, after.id).status == "succeeded"


def test_pause_and_resume_continue_to_the_same_total(server, sample_files):
    # "paused" is missing from the SDK's status enum (OpenAI's own API returns it), so this test
    # reads jobs with a lenient client.
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
    train, _ = sample_files
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 30})
    wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"] >= 15)
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    wait_for(lambda: any(e.message.startswith("The job was paused at step") for e in all_events(client, job.id)))
    paused_at = client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"]
    time.sleep(0.5)
    assert client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"] == paused_at < 300
    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status in ("queued", "running")
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded", done.error
    assert done.model_extra["trained_steps"] == done.model_extra["total_steps"] == 300
    steps = [e.data["step"] for e in metrics_events(client, job.id)]
    assert steps == list(range(1, 301))
    assert any(e.message == f"Fine-tuning job resumed from step {paused_at}" for e in all_events(client, job.id))
    error = _error(lambda: client.fine_tuning.jobs.resume(job.id))
    assert error.status_code == 400


def test_resume_right_after_pause_loses_and_repeats_no_step(server, sample_files):
    # As OpenAI's docs show it: pause, then resume at once, while the pause checkpoint is still being written.
    client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="k", max_retries=0)
    train, _ = sample_files
    job = client.fine_tuning.jobs.create(model=TINY, training_file=train.id, hyperparameters={"n_epochs": 30})
    wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).model_extra["trained_steps"] >= 15)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    assert client.fine_tuning.jobs.resume(job.id).status in ("running", "queued")
    done = wait_done(client, job.id, patience=120)
    assert done.status == "succeeded", done.error
    steps = [e.data["step"] for e in metrics_events(client, job.id)]
    assert steps == list(range(1, 301))


def test_job_list_paginates_and_filters_by_metadata(start_server):
    server = start_server(worker=False)
    client = server.client()
    train = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    ids = [
        client.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                       metadata={"parity": "even" if i % 2 == 0 else "odd"}).id
        for i in range(25)
    ]
    first = client.fine_tuning.jobs.list()
    assert len(first.data) == 20 and first.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=7)] == ids[::-1]
    even = [j.id for j in client.fine_tuning.jobs.list(limit=5, metadata={"parity": "even"})]
    assert even == ids[::-2]
    assert all(j.status == "queued" for j in first.data)


STAND_IN_RECORDER = '''
import json, os

def _write(record):
    with open(os.environ["TRACKER_CALLS"], "a") as handle:
        handle.write(json.dumps(record) + "\\n")
'''

WANDB_STAND_IN = STAND_IN_RECORDER + '''
class Run:
    def log(self, metrics, step=None):
        _write({"call": "wandb.log", "step": step, "metrics": metrics})

    def finish(self):
        _write({"call": "wandb.finish"})

def login(key, relogin=False):
    _write({"call": "wandb.login", "key": key})

def init(**options):
    _write({"call": "wandb.init", **{k: v for k, v in options.items() if k != "config"},
            "config": options.get("config")})
    return Run()
'''

MLFLOW_STAND_IN = STAND_IN_RECORDER + '''
from types import SimpleNamespace

class MlflowClient:
    def __init__(self, tracking_uri):
        _write({"call": "mlflow.client", "tracking_uri": tracking_uri,
                "username": os.environ.get("MLFLOW_TRACKING_USERNAME"),
                "password": os.environ.get("MLFLOW_TRACKING_PASSWORD")})

    def get_experiment_by_name(self, name):
        return None

    def create_experiment(self, name):
        _write({"call": "mlflow.create_experiment", "name": name})
        return "7"

    def create_run(self, experiment_id, run_name, tags):
        _write({"call": "mlflow.create_run", "experiment_id": experiment_id, "run_name": run_name, "tags": tags})
        return SimpleNamespace(info=SimpleNamespace(run_id="run-1"))

    def log_param(self, run_id, key, value):
        pass

    def log_metric(self, run_id, key, value, step):
        _write({"call": "mlflow.log_metric", "key": key, "step": step,
                "password": os.environ.get("MLFLOW_TRACKING_PASSWORD")})

    def set_terminated(self, run_id):
        _write({"call": "mlflow.set_terminated", "run_id": run_id})
'''


def test_wandb_and_mlflow_integrations_log_every_step_when_installed(start_server, tmp_path):
    # Stand-ins for the third-party wandb and mlflow packages on the worker's path record what GXFT sends.
    site = tmp_path / "site"
    (site / "wandb").mkdir(parents=True)
    (site / "wandb" / "__init__.py").write_text(WANDB_STAND_IN)
    (site / "mlflow" / "tracking").mkdir(parents=True)
    (site / "mlflow" / "__init__.py").write_text("")
    (site / "mlflow" / "tracking" / "__init__.py").write_text(MLFLOW_STAND_IN)
    calls = tmp_path / "tracker-calls.jsonl"
    server = start_server(worker=True, env={
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "TRACKER_CALLS": str(calls),
    })
    client = server.client()
    train = processed(client, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    # OpenAI's SDK types know wandb integrations only, so its strict mode refuses a job that has an mlflow one,
    # as Nebius's jobs may: the answers are read as JSON.
    created = client.fine_tuning.jobs.with_raw_response.create(
        model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1},
        integrations=[
            {"type": "wandb", "wandb": {"project": "gxft-tests", "tags": ["compat"], "api_key": "wandb-secret"}},
            {"type": "mlflow", "mlflow": {"tracking_uri": "http://mlflow.example:5000", "experiment_name": "exp",
                                          "tags": {"team": "a"}, "username": "u", "password": "mlflow-secret"}},
        ],
    ).http_response
    job_id = created.json()["id"]
    answered = client.fine_tuning.jobs.with_raw_response.retrieve(job_id).http_response.text
    assert "secret" not in created.text + answered and '"tracking_uri":"http://mlflow.example:5000"' in answered
    assert created.json()["integrations"][0] == {"type": "wandb", "wandb": {"project": "gxft-tests", "name": None,
                                                 "entity": None, "tags": ["compat"]}}
    lenient = openai.OpenAI(base_url=server.base_url + "/v1", api_key="sk-test", max_retries=0)
    assert wait_done(lenient, job_id).status == "succeeded"
    records = [json.loads(line) for line in calls.read_text().splitlines()]
    wandb_calls = [r for r in records if r["call"].startswith("wandb.")]
    assert wandb_calls[0] == {"call": "wandb.login", "key": "wandb-secret"}
    init = wandb_calls[1]
    assert init["call"] == "wandb.init" and init["project"] == "gxft-tests"
    assert init["name"] == job_id and init["tags"] == ["compat"] and init["config"]["n_epochs"] == 1
    assert [r["step"] for r in wandb_calls if r["call"] == "wandb.log"] == list(range(1, 11))
    assert wandb_calls[-1]["call"] == "wandb.finish"

    mlflow_calls = [r for r in records if r["call"].startswith("mlflow.")]
    assert mlflow_calls[0] == {"call": "mlflow.client", "tracking_uri": "http://mlflow.example:5000",
                               "username": "u", "password": "mlflow-secret"}
    assert mlflow_calls[2]["run_name"] == job_id and mlflow_calls[2]["tags"] == {"team": "a", "gxft.job_id": job_id}
    losses = [r for r in mlflow_calls if r["call"] == "mlflow.log_metric" and r["key"] == "train_loss"]
    assert [r["step"] for r in losses] == list(range(1, 11))
    assert all(r["password"] == "mlflow-secret" for r in losses)  # set around each call, gone between them
    assert mlflow_calls[-1] == {"call": "mlflow.set_terminated", "run_id": "run-1"}


def test_wandb_integration_without_the_package_warns_and_trains(client, sample_files):
    train, _ = sample_files
    job = client.fine_tuning.jobs.create(
        model=TINY, training_file=train.id, hyperparameters={"n_epochs": 1},
        integrations=[{"type": "wandb", "wandb": {"project": "p"}}],
    )
    assert wait_done(client, job.id).status == "succeeded"
    warnings = [e for e in all_events(client, job.id) if e.level == "warn"]
    assert warnings and "wandb package is not installed" in warnings[0].message
