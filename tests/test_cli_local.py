"""`gxft create-config`, `train` and `evaluate`, offline, on gxft/tiny-chat. `train` runs as a subprocess, as a
user runs it (its progress bar, its warnings); the rest through the command line's own entry point in this
process, as each start of one costs seconds of imports."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gxft.cli import main

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "sample_data" / "sample_training_data.jsonl"
VALID = ROOT / "sample_data" / "sample_validation_data.jsonl"


def gxft(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gxft", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                             "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                                            os.environ.get("PYTHONPATH", "")])})


def gxft_here(capsys, *args: str) -> tuple[int, str, str]:
    """`gxft` in this process: its exit status, stdout and stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    output = capsys.readouterr()
    return exited.value.code or 0, output.out, output.err


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("method", [
    "lora", "sft", pytest.param("qlora", marks=pytest.mark.skipif(not _has_cuda(), reason="QLoRA needs a CUDA GPU")),
])
def test_create_config_train_evaluate(tmp_path, method, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, err = gxft_here(capsys, "create-config", "demo", "--model", "gxft/tiny-chat", "--dataset", str(TRAIN),
                               "--method", method)
    assert status == 0, err
    config = json.loads((tmp_path / "demo.json").read_text())
    assert set(config) == {"dataset", "model", "training"}
    assert config["dataset"] == {"path": str(TRAIN), "format": "chat", "train_split": "train", "validation_path": None}
    assert {"name", "max_length", "padding_side", "device_map"} <= set(config["model"])
    training = config["training"]
    assert training["method"] == method and training["output_dir"] == "./demo_output"
    assert {"num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate",
            "weight_decay"} <= set(training)
    assert (training["lora"] is None) == (method == "sft")
    training.update(num_train_epochs=2, learning_rate=3e-3, gradient_accumulation_steps=1)
    config["dataset"]["validation_path"] = str(VALID)
    (tmp_path / "demo.json").write_text(json.dumps(config))

    trained = gxft("train", "demo.json", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "10 steps" in trained.stdout and "Training gxft/tiny-chat" in trained.stderr  # the progress bar
    assert "Warning" not in trained.stderr, trained.stderr  # no library deprecation notices reach the user
    output = tmp_path / "demo_output"
    weights = {"lora": "adapter_model.safetensors", "qlora": "adapter_model.safetensors",
               "sft": "model.safetensors"}[method]
    assert (output / weights).exists() and (output / "tokenizer.json").exists()
    rows = list(csv.DictReader((output / "step_metrics.csv").open()))
    assert len(rows) == 10 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert sum(1 for row in rows if row["valid_loss"]) == 2  # validation at each epoch's end

    status, out, err = gxft_here(capsys, "evaluate", "demo_output", "--dataset", str(VALID), "--json")
    assert status == 0, err
    metrics = json.loads(out)
    assert metrics["examples"] == 5 and metrics["format"] == "chat"
    assert abs(metrics["perplexity"] - 2.718281828 ** metrics["loss"]) < 1e-6 * metrics["perplexity"]
    # The same evaluation as training's; but QLoRA trained (and validated) on the 4-bit base, while
    # `evaluate` puts the adapter on the full-precision one (measured on an H100: 7.187 against 7.177).
    tolerance = 2e-2 if method == "qlora" else 1e-3
    assert abs(metrics["loss"] - float(rows[-1]["valid_loss"])) < tolerance
    assert 0 <= metrics["token_accuracy"] <= 1
    status, table, _ = gxft_here(capsys, "evaluate", str(output), "--dataset", str(VALID))
    assert status == 0 and "perplexity" in table and "token_accuracy" in table


def test_create_config_yaml(tmp_path):
    created = gxft("create-config", "y", "--model", "gxft/tiny-chat", "--dataset", str(TRAIN), "--yaml",
                   cwd=tmp_path)
    assert created.returncode == 0 and (tmp_path / "y.yaml").exists()
    assert "method: lora" in (tmp_path / "y.yaml").read_text()


def _config(tmp_path: Path, capsys, change) -> Path:
    """A config made by create-config in the current folder, tmp_path, then changed."""
    gxft_here(capsys, "create-config", "bad", "--model", "gxft/tiny-chat", "--dataset", str(TRAIN))
    config = json.loads((tmp_path / "bad.json").read_text())
    change(config)
    (tmp_path / "bad.json").write_text(json.dumps(config))
    return tmp_path / "bad.json"


@pytest.mark.parametrize("change, message", [
    (lambda c: c["training"].update(lr=1e-4), "unknown key training.lr"),
    (lambda c: c.update(extra=1), "unknown key extra"),
    (lambda c: c["training"].update(num_train_epochs=0), "training.num_train_epochs"),
    (lambda c: c["training"].update(learning_rate=-1), "training.learning_rate"),
    (lambda c: c["training"]["lora"].update(r=0), "training.lora.r"),
    (lambda c: c["training"].update(method="magic"), "training.method"),
    (lambda c: c["dataset"].update(path="missing.jsonl"), "dataset.path: missing.jsonl does not exist"),
    (lambda c: c["dataset"].update(path=str(ROOT / "sample_data/invalid/bad_lines.jsonl")), "line "),
    (lambda c: c["training"].update(method="qlora"), "needs a CUDA GPU"),
])
def test_bad_config_stops_before_training(tmp_path, capsys, monkeypatch, change, message):
    monkeypatch.chdir(tmp_path)
    status, _, err = gxft_here(capsys, "train", str(_config(tmp_path, capsys, change)))
    assert status == 2
    assert message in err
    assert "Traceback" not in err and not (tmp_path / "bad_output").exists()


def test_unknown_model_stops_before_training_without_the_hub(tmp_path, capsys, monkeypatch):
    """A subprocess, offline as a user's machine may be: a name that is neither a folder nor in the cache is
    refused at once, with no attempt at the hub and none of its retries."""
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path, capsys, lambda c: c["model"].update(name="acme/not-a-model"))
    result = gxft("train", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "model.name: The model 'acme/not-a-model' is neither" in result.stderr
    assert "Traceback" not in result.stderr and "huggingface.co" not in result.stderr


def test_evaluate_refuses_a_folder_without_a_model(tmp_path, capsys):
    status, _, err = gxft_here(capsys, "evaluate", str(tmp_path), "--dataset", str(VALID))
    assert status == 2 and "nor a folder that holds one" in err


def test_evaluate_reads_every_supervised_format(tmp_path, capsys):
    rows = {
        "alpaca": {"instruction": "Name a colour.", "input": "", "output": "Blue."},
        "prompt_completion": {"prompt": "The sky is", "completion": " blue."},
        "text": {"text": "The sky is blue."},
    }
    for data_format, row in rows.items():
        dataset = tmp_path / f"{data_format}.jsonl"
        dataset.write_text((json.dumps(row) + "\n") * 3)
        # A registry id, not a folder.
        status, out, err = gxft_here(capsys, "evaluate", "gxft/tiny-chat", "--dataset", str(dataset), "--json")
        assert status == 0, err
        metrics = json.loads(out)
        assert metrics["format"] == data_format and metrics["examples"] == 3 and metrics["loss"] > 0
