"""`gxft migrate` from a second GXFT server (an OpenAI-compatible source like any other): the dry run prints
the plan and changes nothing; the migration copies the files and recreates each job with its method,
hyperparameters, suffix, seed and metadata on the mapped model; a second run skips what the first did."""

import subprocess
import sys

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.test_files import jsonl, processed
from compat_tests.test_fine_tuning import TINY
from compat_tests.test_training_methods import PAIRS, preference_row
from conftest import SMOLLM2


def gxft_migrate(source, target, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gxft", "migrate", "--from-base-url", source.base_url + "/v1", "--from-api-key",
         "sk-source", "--base-url", target.base_url + "/v1", "--api-key", "sk-target", *args],
        capture_output=True, text=True, timeout=120,
    )


def test_migrate_recreates_jobs_and_files_on_the_mapped_model(start_server):
    source, target = start_server(name="source"), start_server(name="target")
    old = source.client()
    train_bytes = (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes()
    valid_bytes = (SAMPLE_DATA / "sample_validation_data.jsonl").read_bytes()
    train, valid = processed(old, train_bytes, "train.jsonl"), processed(old, valid_bytes, "valid.jsonl")
    supervised = old.fine_tuning.jobs.create(
        model=TINY, training_file=train.id, validation_file=valid.id, suffix="support", seed=42,
        metadata={"team": "search"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3, "batch_size": 2,
                                                                         "learning_rate_multiplier": 2.0}}},
    )
    pairs = processed(old, jsonl(preference_row(*pair) for pair in PAIRS), "pairs.jsonl")
    dpo = old.fine_tuning.jobs.create(
        model=TINY, training_file=pairs.id, seed=7,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1}}},
    )

    dry = gxft_migrate(source, target, "--model-map", f"{TINY}={SMOLLM2}", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{supervised.id} (queued): {TINY} → {SMOLLM2}, supervised, suffix 'support', seed 42" in dry.stdout
    assert f"training file: {train.id} train.jsonl, {len(train_bytes):,} bytes, from the source" in dry.stdout
    assert "hyperparameters: " in dry.stdout and "n_epochs=3" in dry.stdout and "beta=0.2" in dry.stdout
    assert "does not carry over: learning_rate_multiplier scales GXFT's base rate" in dry.stdout
    assert "2 of 2 jobs to recreate" in dry.stdout
    new = target.client()
    assert new.fine_tuning.jobs.list().data == [] and new.files.list().data == []

    done = gxft_migrate(source, target, "--model-map", f"{TINY}={SMOLLM2}")
    assert done.returncode == 0, done.stderr
    jobs = {job.metadata["migrated_from"]: job for job in new.fine_tuning.jobs.list()}
    assert set(jobs) == {supervised.id, dpo.id}
    copy = jobs[supervised.id]
    assert copy.model == SMOLLM2 and copy.seed == 42 and copy.user_provided_suffix == "support"
    assert copy.metadata == {"team": "search", "migrated_from": supervised.id}
    hyperparameters = copy.method.supervised.hyperparameters
    assert (hyperparameters.n_epochs, hyperparameters.batch_size, hyperparameters.learning_rate_multiplier) == \
        (3, 2, 2.0)
    assert new.files.content(copy.training_file).read() == train_bytes
    assert new.files.content(copy.validation_file).read() == valid_bytes
    assert new.files.retrieve(copy.training_file).filename == "train.jsonl"
    assert jobs[dpo.id].method.type == "dpo" and jobs[dpo.id].method.dpo.hyperparameters.beta == 0.2
    assert f"{supervised.id} → {copy.id} (queued)" in done.stdout

    again = gxft_migrate(source, target, "--model-map", f"{TINY}={SMOLLM2}")
    assert again.returncode == 0 and "0 of 2 jobs to recreate" in again.stdout
    assert "skipped: already migrated" in again.stdout and len(new.fine_tuning.jobs.list().data) == 2


def test_migrate_says_which_jobs_have_no_model_here(start_server, tmp_path):
    registry = tmp_path / "source-registry.toml"
    registry.write_text('[[models]]\nid = "acme/other"\npath = "%s"\n' % (SAMPLE_DATA / "models" / "tiny-chat"))
    source = start_server(name="source", env={"GXFT_MODELS_FILE": str(registry)})
    target = start_server(name="target")
    old = source.client()
    train = processed(old, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    job = old.fine_tuning.jobs.create(model="acme/other", training_file=train.id)
    result = gxft_migrate(source, target, "--dry-run")
    assert result.returncode == 0
    assert "skipped: no model here is acme/other: map it with --model-map acme/other=MODEL" in result.stdout
    bad = gxft_migrate(source, target, "--model-map", "nonsense")
    assert bad.returncode == 2 and "write it as OLD=NEW" in bad.stderr
    assert job.status == "queued"
