"""The gxft command's remote commands, as subprocesses against a real server: what they print and
their exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.server_process import free_port
from compat_tests.test_fine_tuning import TINY, TINY_PATH
from gxft.output import printable

ROOT = SAMPLE_DATA.parent


def gxft(server, *args: str, cwd: Path | None = None, base_url: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_BASE_URL": base_url or server.base_url + "/v1", "OPENAI_API_KEY": "sk-cli",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "gxft", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd or ROOT)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_check_connection(server):
    output = ok(gxft(server, "check-connection"))
    lines = output.splitlines()
    assert lines[0] == f"endpoint: {server.base_url}/v1/"
    for name in ("models", "fine_tuning.jobs", "files"):
        line = next(line for line in lines if line.startswith(name))
        assert " OK " in line and " 200 " in line and line.endswith(" ms")
    dead = gxft(server, "check-connection", base_url=f"http://127.0.0.1:{free_port()}/v1")
    assert dead.returncode == 1 and dead.stdout.count("FAIL") == 3 and "cannot connect" in dead.stdout


def test_files_commands(server, tmp_path):
    uploaded = gxft(server, "files", "upload", str(SAMPLE_DATA / "sample_training_data.jsonl"))
    assert "Uploading sample_training_data.jsonl" in uploaded.stderr  # the upload bar
    file_id, status = ok(uploaded).split(":")[0].split()[0], ok(uploaded)
    assert file_id.startswith("file-") and "processed" in status

    bad = gxft(server, "files", "upload", str(SAMPLE_DATA / "invalid" / "bad_lines.jsonl"))
    assert bad.returncode == 1 and "INVALID" in bad.stdout and "line " in bad.stdout

    listed = json.loads(ok(gxft(server, "files", "list", "--json")))
    assert file_id in [f["id"] for f in listed]
    assert file_id in ok(gxft(server, "files", "list"))
    assert json.loads(ok(gxft(server, "files", "get", file_id)))["filename"] == "sample_training_data.jsonl"
    target = tmp_path / "copy.jsonl"
    ok(gxft(server, "files", "download", file_id, "-o", str(target)))
    assert target.read_bytes() == (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes()
    assert "deleted" in ok(gxft(server, "files", "delete", file_id))
    missing = gxft(server, "files", "get", file_id)
    assert missing.returncode == 1 and "404" in missing.stderr and "Traceback" not in missing.stderr


def test_whole_loop_from_the_command_line(server, tmp_path):
    created = gxft(server, "jobs", "create", "--model", TINY, "--training-file",
                   str(SAMPLE_DATA / "sample_training_data.jsonl"), "--validation-file",
                   str(SAMPLE_DATA / "sample_validation_data.jsonl"), "--epochs", "3", "--lora-r", "4",
                   "--suffix", "cli", "--seed", "1", "--watch")
    output = ok(created)
    job_id = output.split(":")[0]
    assert job_id.startswith("ftjob-")
    assert f"{job_id}: succeeded → ft:{TINY}:personal:cli:" in output
    assert "step" in created.stderr and "loss=" in created.stderr  # the live bar over steps
    fine_tuned = output.rsplit("→ ", 1)[1].strip()

    job = json.loads(ok(gxft(server, "jobs", "get", job_id)))
    assert job["status"] == "succeeded" and job["hyperparameters"]["lora_r"] == 4
    assert job_id in ok(gxft(server, "jobs", "list"))
    events = ok(gxft(server, "jobs", "events", job_id)).splitlines()
    assert "Created fine-tuning job" in events[0] and "completed" in events[-1]
    checkpoints = ok(gxft(server, "jobs", "checkpoints", job_id))
    assert checkpoints.count("ckpt-step-") == 2 and fine_tuned in checkpoints
    assert ok(gxft(server, "jobs", "watch", job_id)).startswith(f"{job_id}: succeeded")

    folder = tmp_path / "adapter"
    ok(gxft(server, "jobs", "download", job_id, "--dir", str(folder)))
    assert sorted(p.name for p in folder.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY_PATH), folder)  # loads as it is
    earlier = tmp_path / "earlier"
    ok(gxft(server, "jobs", "download", job_id, "--checkpoint", "10", "--dir", str(earlier)))
    assert (earlier / "adapter_model.safetensors").read_bytes() != (folder / "adapter_model.safetensors").read_bytes()
    missing = gxft(server, "jobs", "download", job_id, "--checkpoint", "7")
    assert missing.returncode == 1 and "no checkpoint at step 7" in missing.stderr and "10" in missing.stderr

    evaluated = json.loads(ok(gxft(server, "evaluate", str(folder), "--dataset",
                                   str(SAMPLE_DATA / "sample_validation_data.jsonl"), "--json")))
    assert evaluated["examples"] == 5 and evaluated["loss"] > 0

    assert fine_tuned in ok(gxft(server, "models", "list"))
    answer = ok(gxft(server, "chat", fine_tuned, "Hello", "--max-tokens", "5", "--temperature", "0"))
    expected = server.client().chat.completions.create(
        model=fine_tuned, messages=[{"role": "user", "content": "Hello"}], max_tokens=5, temperature=0)
    assert answer == printable(expected.choices[0].message.content, newlines=True) + "\n"
    assert "deleted" in ok(gxft(server, "models", "delete", fine_tuned))
    gone = gxft(server, "chat", fine_tuned, "Hello")
    assert gone.returncode == 1 and "404" in gone.stderr


def test_jobs_cancel_pause_resume_and_failure_exit_code(server):
    train = ok(gxft(server, "files", "upload", str(SAMPLE_DATA / "sample_training_data.jsonl"))).split()[0]
    job_id = ok(gxft(server, "jobs", "create", "--model", TINY, "--training-file", train, "--epochs", "50")
                ).split(":")[0]
    assert ok(gxft(server, "jobs", "pause", job_id, "--json")).count('"paused"') == 1
    resumed = ok(gxft(server, "jobs", "resume", job_id))  # at once: the pause checkpoint may still be saving
    assert f"{job_id}: queued" in resumed or f"{job_id}: running" in resumed
    assert f"{job_id}: cancelled" in ok(gxft(server, "jobs", "cancel", job_id))
    watched = gxft(server, "jobs", "watch", job_id)
    assert watched.returncode == 1 and f"{job_id}: cancelled" in watched.stdout
    refused = gxft(server, "jobs", "create", "--model", "no-such-model", "--training-file", train)
    assert refused.returncode == 1 and "400" in refused.stderr and TINY in refused.stderr


def test_dpo_job_continuing_a_fine_tuned_model_from_the_command_line(server, tmp_path):
    sft = ok(gxft(server, "jobs", "create", "--model", TINY, "--training-file",
                  str(SAMPLE_DATA / "sample_training_data.jsonl"), "--epochs", "1", "--watch"))
    fine_tuned = sft.rsplit("→ ", 1)[1].strip()
    preferences = tmp_path / "preferences.jsonl"
    preferences.write_text("".join(json.dumps({
        "input": {"messages": [{"role": "user", "content": f"Say {i}"}]},
        "preferred_output": [{"role": "assistant", "content": f"{i}"}],
        "non_preferred_output": [{"role": "assistant", "content": "No."}],
    }) + "\n" for i in range(10)))
    output = ok(gxft(server, "jobs", "create", "--model", fine_tuned, "--training-file", str(preferences),
                     "--method", "dpo", "--beta", "0.2", "--epochs", "1", "--watch"))
    job = json.loads(ok(gxft(server, "jobs", "get", output.split(":")[0])))
    assert job["status"] == "succeeded" and job["model"] == fine_tuned
    assert job["method"]["type"] == "dpo" and job["method"]["dpo"]["hyperparameters"] == job["hyperparameters"]
    assert job["hyperparameters"]["beta"] == 0.2

    import torch

    if not torch.cuda.is_available():
        qlora = gxft(server, "jobs", "create", "--model", TINY, "--training-file", str(preferences),
                     "--method", "dpo", "--quantization", "nf4")
        assert qlora.returncode == 1 and "400" in qlora.stderr and "needs a worker with a CUDA GPU" in qlora.stderr


def test_graders_and_a_reinforcement_job_from_the_cli(server, tmp_path):
    grader = tmp_path / "grader.json"
    grader.write_text(json.dumps({"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
                                  "reference": "{{item.answer}}", "operation": "eq"}))
    assert ok(gxft(server, "graders", "validate", str(grader))) == f"{grader}: a valid string_check grader\n"
    assert ok(gxft(server, "graders", "run", str(grader), "--sample", "Paris", "--item", '{"answer": "Paris"}')
              ) == "reward 1\n"
    missing = ok(gxft(server, "graders", "run", str(grader), "--sample", "Paris", "--item", "{}"))
    assert missing == "reward 0 (errors: invalid_variable_error)\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "python", "name": "p", "source": "def grade(:"}))
    refused = gxft(server, "graders", "validate", str(bad))
    assert refused.returncode == 1 and "does not compile" in refused.stderr
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {i}"}], "answer": str(i)})
                               + "\n" for i in range(10)))
    created = gxft(server, "jobs", "create", "--model", TINY, "--training-file", str(prompts), "--method",
                   "reinforcement", "--grader", str(grader), "--epochs", "1", "--batch-size", "5",
                   "--max-completion-tokens", "4", "--compute-multiplier", "0.5", "--watch")
    assert created.returncode == 0, created.stdout + created.stderr
    job_id = created.stdout.split(":")[0]
    job = json.loads(ok(gxft(server, "jobs", "get", job_id, "--json")))
    assert job["status"] == "succeeded" and job["method"]["reinforcement"]["grader"]["name"] == "exact"
    assert job["hyperparameters"]["samples_per_prompt"] == 2 and job["trained_steps"] == 2
    no_grader = gxft(server, "jobs", "create", "--model", TINY, "--training-file", str(prompts), "--method",
                     "reinforcement")
    assert no_grader.returncode != 0 and "needs --grader FILE" in no_grader.stderr
