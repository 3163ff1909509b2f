"""Checkpoint permissions as OpenAI's admin-key endpoints: an admin key shares a project's fine-tuned checkpoint
with another project, which then lists it, chats with it and trains from it, and sees nothing else of the
owner's; revoking takes all three away. Project keys cannot manage permissions, nor admin keys anything else."""

import openai
import pytest

from compat_tests.conftest import SAMPLE_DATA
from compat_tests.test_files import processed
from compat_tests.test_fine_tuning import TINY, wait_done

KEYS = {"GXFT_API_KEYS": "key-alpha=alpha,key-beta=beta", "GXFT_ADMIN_KEYS": "key-admin"}


def _chat(client: openai.OpenAI, model: str) -> str:
    answer = client.chat.completions.create(model=model, max_tokens=4,
                                            messages=[{"role": "user", "content": "Question 3?"}])
    return answer.choices[0].finish_reason


def test_a_shared_checkpoint_is_called_and_trained_from_by_its_grantee_until_revoked(start_server):
    server = start_server(env=KEYS, worker=True)
    alpha, beta, admin = (server.client(key) for key in ("key-alpha", "key-beta", "key-admin"))
    train = processed(alpha, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes())
    job = wait_done(alpha, alpha.fine_tuning.jobs.create(model=TINY, training_file=train.id,
                                                         hyperparameters={"n_epochs": 2}).id, patience=120)
    assert job.status == "succeeded", job.error
    model = job.fine_tuned_model
    others = {m.id for m in alpha.models.list() if m.id.startswith("ft:")} - {model}
    assert others, "the job keeps earlier checkpoints, which stay alpha's alone"
    permissions = admin.fine_tuning.checkpoints.permissions

    with pytest.raises(openai.PermissionDeniedError, match="admin key"):
        alpha.fine_tuning.checkpoints.permissions.create(model, project_ids=["beta"])
    with pytest.raises(openai.PermissionDeniedError, match="project's API key"):
        admin.models.list()
    with pytest.raises(openai.NotFoundError):
        _chat(beta, model)

    granted = permissions.create(model, project_ids=["beta"])
    (permission,) = granted.data
    assert (permission.object, permission.project_id) == ("checkpoint.permission", "beta")
    assert permission.id.startswith("cp_")
    assert permissions.create(model, project_ids=["beta"]).data[0].id == permission.id  # granted once
    assert [p.id for p in permissions.list(model)] == [permission.id]
    assert [p.id for p in permissions.list(model, project_id="alpha")] == []

    listed = {m.id: m for m in beta.models.list() if m.id.startswith("ft:")}
    assert set(listed) == {model} and listed[model].owned_by == "alpha"
    assert _chat(beta, model) in ("stop", "length")
    child = wait_done(beta, beta.fine_tuning.jobs.create(model=model, training_file=processed(
        beta, (SAMPLE_DATA / "sample_training_data.jsonl").read_bytes()).id, hyperparameters={"n_epochs": 1}).id,
        patience=120)
    assert child.status == "succeeded", child.error
    for other in others:
        with pytest.raises(openai.NotFoundError):
            _chat(beta, other)
    with pytest.raises(openai.NotFoundError):
        beta.fine_tuning.jobs.retrieve(job.id)
    with pytest.raises(openai.NotFoundError):
        beta.files.retrieve(train.id)
    with pytest.raises(openai.PermissionDeniedError, match="only its own project"):
        beta.models.delete(model)

    deleted = permissions.delete(permission.id, fine_tuned_model_checkpoint=model)
    assert (deleted.id, deleted.deleted, deleted.object) == (permission.id, True, "checkpoint.permission")
    assert model not in {m.id for m in beta.models.list()}
    with pytest.raises(openai.NotFoundError):
        _chat(beta, model)
    with pytest.raises(openai.BadRequestError):
        beta.fine_tuning.jobs.create(model=model, training_file=train.id)
    assert _chat(alpha, model) in ("stop", "length")  # the owner's own use is untouched

    with pytest.raises(openai.BadRequestError, match="No project 'gamma'"):
        permissions.create(model, project_ids=["gamma"])
    with pytest.raises(openai.BadRequestError, match="needs no permission"):
        permissions.create(model, project_ids=["alpha"])
    with pytest.raises(openai.NotFoundError):
        permissions.create("ft:gxft/tiny-chat:alpha::NoSuch12", project_ids=["beta"])
    with pytest.raises(openai.NotFoundError):
        permissions.delete(permission.id, fine_tuned_model_checkpoint=model)  # already revoked
