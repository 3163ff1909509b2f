"""Nebius's own fine-tuning sample (token-factory-cookbook, post-training/fine-tuning-1/fine_tune_llama.ipynb),
its cells as they are, against a server of Nebius's dialect: only the base URL differs.

The sample uploads a chat dataset (system prompts; a third of the conversations stop on a user turn) and
creates the job at once, with Nebius's hyperparameters (`learning_rate_multiplier` 2e-5 meaning the
rate itself), polls, prints the events oldest first, tabulates each epoch's checkpoint metrics, downloads
the last checkpoint's files by the part after the slash of their names, deploys the adapter through
`POST /v0/models`, waits for it to be active and chats with the deployed name.
"""

import itertools
import os
import time

import openai
import pytest
import requests
import torch

from compat_tests.conftest import MEASUREMENTS, SAMPLE_DATA
from compat_tests.server_process import ServerProcess
from compat_tests.test_fine_tuning import TINY

NEBIUS_SAMPLE = SAMPLE_DATA / "nebius_sample"
EPOCHS, BATCH_SIZE, LEARNING_RATE = 5, 32, 2e-5  # the sample's
# The sample packs 32 conversations a step: on SmolLM2 that is about 100 s a step on two CPU cores (518 s for
# the whole sample, measured), seconds on a GPU.
REAL_MODEL_IS_QUICK = torch.cuda.is_available()


@pytest.fixture(scope="module")
def nebius_server(request, tmp_path_factory) -> ServerProcess:
    """A server of Nebius's dialect and the emulator profile, where the sample's model names are SmolLM2
    (converted once for the session, where it is to train); tiny-chat answers to its own name."""
    from conftest import SMOLLM2_FOLDER_NAME

    data_dir = tmp_path_factory.mktemp("nebius") / "data"
    (data_dir / "models").mkdir(parents=True)
    if REAL_MODEL_IS_QUICK:
        (data_dir / "models" / SMOLLM2_FOLDER_NAME).symlink_to(request.getfixturevalue("smollm2_folder"))
    process = ServerProcess(data_dir, env={"GXFT_DIALECT": "nebius", "GXFT_PROFILE": "emulator"})
    yield process
    process.stop()


def run_the_sample(api_url: str, api_key: str, base_model_finetune: str, base_model_inference: str,
                   save_dir: str) -> dict:
    """The sample's cells, in order, with its names; what it printed or computed is returned to be checked."""
    from openai import OpenAI

    client = OpenAI(base_url=f"{api_url}/v1/", api_key=api_key)
    fine_tuning_train_file = client.files.create(file=open(NEBIUS_SAMPLE / "training_data.jsonl", "rb"),
                                                 purpose="fine-tune")
    fine_tuning_validation_file = client.files.create(file=open(NEBIUS_SAMPLE / "validation_data.jsonl", "rb"),
                                                      purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=base_model_finetune,
        suffix="demo-run",
        training_file=fine_tuning_train_file.id,
        validation_file=fine_tuning_validation_file.id,
        hyperparameters={
            "batch_size": BATCH_SIZE,
            "learning_rate_multiplier": LEARNING_RATE,
            "n_epochs": EPOCHS,
            "warmup_ratio": 0.03,
            "weight_decay": 0,
            "lora": True,
            "packing": True,
        },
    )
    active_statuses = ["validating_files", "queued", "running"]
    deadline = time.monotonic() + 600
    while job.status in active_statuses and time.monotonic() < deadline:
        time.sleep(0.5)  # the sample's 30 s, for a job of seconds
        job = client.fine_tuning.jobs.retrieve(job.id)

    events = client.fine_tuning.jobs.list_events(job.id)
    printed_events = [f"[{e.created_at}] {e.level}: {e.message}" for e in events.data]

    ft_checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    metrics = []
    for epoch_data in ft_checkpoints:
        epoch_metrics = {}
        epoch_metrics["train_loss"] = epoch_data.metrics.train_loss
        epoch_metrics["valid_loss"] = epoch_data.metrics.valid_loss
        metrics.append(epoch_metrics)

    os.makedirs(save_dir, exist_ok=True)
    best_checkpoint = ft_checkpoints[-1]
    for model_file_id in best_checkpoint.result_files:
        file_name = client.files.retrieve(model_file_id).filename.split('/')[1]
        file_content = client.files.content(model_file_id)
        file_content.write_to_file(os.path.join(save_dir, file_name))

    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    lora_creation_request = {
        "name": "my-finetuned-model",
        "base_model": base_model_inference,
        "source": f"{job.id}:{best_checkpoint.id}",
        "description": "Fine tuned model",
    }
    response_json = requests.post(f"{api_url}/v0/models", json=lora_creation_request, headers=headers).json()
    deployed_model_name = response_json["name"]
    while True:
        lora_info = requests.get(f"{api_url}/v0/models/{deployed_model_name}", headers=headers).json()
        if lora_info.get("status", "unknown") in {"active", "error"}:
            break
        time.sleep(0.2)

    response = client.chat.completions.create(
        model=deployed_model_name,
        messages=[
            {"role": "system", "content": "You are helpful assistant"},
            {"role": "user", "content": [{"type": "text", "text": "Hello! "}]},
        ],
        max_tokens=8,  # the sample leaves it to the server; a tiny model might not stop for long
    )
    return {"job": job, "events": printed_events, "checkpoints": ft_checkpoints, "metrics": metrics,
            "deployed": response_json, "lora_info": lora_info, "chat": response}


@pytest.fixture(scope="module")
def tiny_run(nebius_server, tmp_path_factory) -> dict:
    """The sample run once on gxft/tiny-chat; its checks and the custom-model tests read it."""
    started = time.monotonic()
    save_dir = tmp_path_factory.mktemp("nebius-sample") / "model-checkpoints" / "latest"
    ran = run_the_sample(nebius_server.base_url, "sk-test", TINY, TINY, str(save_dir))
    return {**ran, "save_dir": save_dir, "seconds": time.monotonic() - started}


def check_the_sample_run(ran: dict, base_model_finetune: str, base_model_inference: str) -> None:
    job = ran["job"]
    assert job.status == "succeeded", job.error
    assert job.hyperparameters.model_extra["learning_rate"] == LEARNING_RATE  # the rate itself, as Nebius reads it

    # Oldest first, the whole run in the default page of 20.
    assert ran["events"][0].endswith(f"info: Created fine-tuning job: {job.id}")
    assert ran["events"][-1].endswith("info: The job has successfully completed")

    checkpoints = ran["checkpoints"]
    assert len(checkpoints) == EPOCHS  # one per epoch, every one kept, oldest first
    steps = [checkpoint.step_number for checkpoint in checkpoints]
    assert steps == sorted(steps) and checkpoints[-1].fine_tuned_model_checkpoint == job.fine_tuned_model
    losses = [epoch["valid_loss"] for epoch in ran["metrics"]]
    MEASUREMENTS.append(f"Nebius's sample on {base_model_finetune}: validation loss by epoch "
                        + ", ".join(f"{loss:.4f}" for loss in losses)
                        + f"; train loss {ran['metrics'][0]['train_loss']:.4f} → {ran['metrics'][-1]['train_loss']:.4f}"
                        + f"; {ran['seconds']:.0f} s")
    assert all(later < earlier for earlier, later in itertools.pairwise(losses)), losses

    assert sorted(os.listdir(ran["save_dir"])) == ["adapter_config.json", "adapter_model.safetensors"]

    deployed, lora_info = ran["deployed"], ran["lora_info"]
    assert deployed["name"].startswith(f"{base_model_inference}-LoRa:my-finetuned-model-")
    assert lora_info["status"] == "active" and lora_info["status_reason"] is None
    assert (lora_info["job_id"], lora_info["checkpoint_id"]) == (job.id, checkpoints[-1].id)
    chat = ran["chat"]
    assert chat.model == deployed["name"] and chat.choices[0].message.content


def test_the_sample_runs_unchanged_and_its_validation_loss_falls(tiny_run):
    check_the_sample_run(tiny_run, TINY, TINY)


@pytest.mark.skipif(not REAL_MODEL_IS_QUICK, reason="SmolLM2 at the sample's batch of 32 packed conversations "
                    "trains on a GPU; a CPU takes 100 s a step")
def test_the_sample_runs_unchanged_on_the_real_model(nebius_server, tmp_path):
    # The sample's own two names, for training and for inference, both SmolLM2 in the emulator profile.
    finetune, inference = "meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct"
    started = time.monotonic()
    ran = run_the_sample(nebius_server.base_url, "sk-test", finetune, inference, str(tmp_path / "latest"))
    check_the_sample_run({**ran, "save_dir": tmp_path / "latest", "seconds": time.monotonic() - started},
                         finetune, inference)


def v0(server: ServerProcess, method: str, path: str, **options) -> requests.Response:
    return requests.request(method, f"{server.base_url}{path}", headers={"Authorization": "Bearer sk-test"},
                            timeout=30, **options)


def refused(response: requests.Response, status: int, code: str | None, words: str) -> bool:
    error = response.json()["error"]
    return response.status_code == status and error["code"] == code and words in error["message"]


def test_custom_models_deploy_from_each_source_serve_and_delete(nebius_server, tiny_run):
    job, checkpoints = tiny_run["job"], tiny_run["checkpoints"]
    client = nebius_server.client()

    def create(**body) -> requests.Response:
        return v0(nebius_server, "POST", "/v0/models", json={"name": "m", "base_model": TINY, **body})

    from_name = create(name="by-name", source=job.fine_tuned_model).json()
    adapter_file = checkpoints[1].result_files[-1]
    from_file = create(name="by-file", source=adapter_file).json()
    assert (from_name["status"], from_file["status"]) == ("active", "active")
    assert from_name["checkpoint_id"] == checkpoints[-1].id
    assert (from_file["checkpoint_id"], from_file["file_id"]) == (checkpoints[1].id, adapter_file)
    listed = {model["name"] for model in v0(nebius_server, "GET", "/v0/models").json()}
    assert {from_name["name"], from_file["name"], tiny_run["deployed"]["name"]} <= listed
    short = from_file["name"].split("-LoRa:")[1]
    assert v0(nebius_server, "GET", f"/v0/models/{short}").json()["name"] == from_file["name"]
    answer = client.chat.completions.create(model=from_file["name"], max_tokens=4,
                                            messages=[{"role": "user", "content": "Hello"}])
    assert answer.model == from_file["name"] and answer.choices[0].message.content

    deleted = v0(nebius_server, "DELETE", f"/v0/models/{from_file['name']}").json()
    assert deleted["status"] == "deleted"
    assert refused(v0(nebius_server, "GET", f"/v0/models/{from_file['name']}"), 404, "model_not_found",
                   "No custom model")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=from_file["name"], messages=[{"role": "user", "content": "Hello"}])

    # Its checkpoint deleted, a custom model turns `error` and says why.
    first = create(name="first-epoch", source=f"{job.id}:{checkpoints[0].id}").json()
    client.models.delete(checkpoints[0].fine_tuned_model_checkpoint)
    broken = v0(nebius_server, "GET", f"/v0/models/{first['name']}").json()
    assert broken["status"] == "error" and checkpoints[0].id in broken["status_reason"]


def test_custom_models_refuse_what_cannot_deploy_with_the_reason(nebius_server, tiny_run):
    job = tiny_run["job"]

    def create(**body) -> requests.Response:
        return v0(nebius_server, "POST", "/v0/models",
                  json={"name": "m", "base_model": TINY, "source": job.fine_tuned_model, **body})

    assert refused(create(source="https://huggingface.co/someone/adapter"), 400, "hub_source_unsupported",
                   "never downloads")
    assert refused(create(source="my-adapter"), 400, None, "is none of")
    assert refused(create(source="ftjob-nope:ftckpt_nope"), 400, "source_not_found", "No checkpoint")
    assert refused(create(source="file-nope"), 400, "source_not_found", "No checkpoint")
    assert refused(create(name="my model!"), 400, None, "letters, digits")
    assert refused(create(base_model="no/such-model"), 400, "model_not_available", "Available")
    assert refused(create(base_model="meta-llama/Meta-Llama-3.1-8B-Instruct"), 400, "base_model_mismatch",
                   "trained on")
    assert refused(create(extra="x"), 400, None, "extra")
    assert refused(v0(nebius_server, "POST", "/v0/models/upload", files={"file": ("a.tar", b"x")}), 404,
                   "unsupported_endpoint", "adapter archives")
    assert refused(v0(nebius_server, "POST", "/v1/datasets", json={"name": "d"}), 404, "unsupported_endpoint",
                   "POST /v1/files")
    assert refused(v0(nebius_server, "GET", "/v0/models/nope"), 404, "model_not_found", "nope")


def test_nebius_job_fields_tags_hf_start_and_full_weights(nebius_server, tiny_run):
    client = nebius_server.client()
    training_file = tiny_run["job"].training_file

    def create(**body):
        return client.fine_tuning.jobs.create(model=TINY, training_file=training_file, extra_body=body)

    with pytest.raises(openai.BadRequestError, match="never reaches") as hf_export:
        create(integrations=[{"type": "hf", "hf": {"output_repo_name": "me/model", "api_token": "hf_x"}}])
    assert hf_export.value.code == "hub_unsupported"
    with pytest.raises(openai.BadRequestError, match="At most 20 tags"):
        create(tags=[f"t{i}" for i in range(21)])
    with pytest.raises(openai.BadRequestError, match="1 to 64 characters"):
        create(tags=[""])
    with pytest.raises(openai.BadRequestError, match="never downloads") as not_here:
        create(from_checkpoint={"type": "hf", "repo": "someone/not-on-this-machine"})
    assert not_here.value.param == "from_checkpoint.repo"

    # A model of this server named as a hub repository trains; fully fine-tuned weights are no adapter.
    job = create(from_checkpoint={"type": "hf", "repo": TINY, "token": "hf_secret"}, tags=["nebius", "full"],
                 hyperparameters={"lora": False, "n_epochs": 1})
    assert job.model_extra["tags"] == ["nebius", "full"]
    assert job.model_extra["from_checkpoint"] == {"type": "hf", "repo": TINY}  # the token is not answered
    deadline = time.monotonic() + 120
    while job.status not in ("succeeded", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    response = v0(nebius_server, "POST", "/v0/models",
                  json={"name": "full", "base_model": TINY, "source": job.fine_tuned_model})
    assert refused(response, 400, "not_an_adapter", "fully fine-tuned")
