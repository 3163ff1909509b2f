"""Polled answers kept per job row version (server/wire_cache.py), on real storage: a change of a job is
seen at the next poll, however the row was changed, and the store stays within its bound."""

import msgspec

from server.presenters import event_object, job_object
from server.wire_cache import WireCache
from storage.database import Database
from storage.jobs import JobRecord, JobRepository


def _job(job_id: str) -> JobRecord:
    return JobRecord(
        id=job_id, project="p", model="gxft/tiny-chat", base_model="gxft/tiny-chat", training_file="file-t",
        validation_file=None, status="queued", created_at=0, seed=1, suffix=None, model_name_id="n",
        method_type="supervised", hyperparameters={"n_epochs": "auto"}, metadata=None, integrations=[],
    )


def _status(answer: msgspec.Raw) -> str:
    return msgspec.json.decode(answer)["status"]


def test_a_changed_job_is_answered_anew(tmp_path):
    jobs = JobRepository(Database(tmp_path / "gxft.sqlite3"))
    jobs.insert(_job("ftjob-a"))
    cache = WireCache(jobs)
    first = jobs.version("ftjob-a", "p")
    assert _status(cache.jobs_json([("ftjob-a", first)])[0]) == "queued"
    jobs.update("ftjob-a", status="running")
    assert jobs.version("ftjob-a", "p") != first
    assert _status(cache.jobs_json([("ftjob-a", jobs.version("ftjob-a", "p"))])[0]) == "running"
    # An UPDATE that does not go through the repository raises the version too (the schema's trigger).
    jobs.db.execute("UPDATE jobs SET status = 'failed' WHERE id = 'ftjob-a'")
    (answer,) = cache.jobs_json([("ftjob-a", jobs.version("ftjob-a", "p"))])
    assert _status(answer) == "failed"
    assert answer == msgspec.Raw(msgspec.json.encode(job_object(jobs.get("ftjob-a"))))


def test_pages_come_in_order_within_the_bound(tmp_path):
    jobs = JobRepository(Database(tmp_path / "gxft.sqlite3"))
    for index in range(5):
        jobs.insert(_job(f"ftjob-{index}"))
        jobs.add_event(f"ftjob-{index}", f"event {index}")
    cache = WireCache(jobs, max_jobs=2, max_events=2)
    keys, has_more = jobs.list_page("p", None, False, None, 4)
    assert has_more and [job_id for job_id, _ in keys] == ["ftjob-4", "ftjob-3", "ftjob-2", "ftjob-1"]
    for _ in range(2):  # built, then partly kept
        assert [msgspec.json.decode(answer)["id"] for answer in cache.jobs_json(keys)] == [k[0] for k in keys]
    assert len(cache._jobs._answers) <= 2
    event_ids, _ = jobs.events_page("ftjob-3", None, 10)
    (event,) = jobs.events(event_ids)
    assert cache.events_json(event_ids) == [msgspec.Raw(msgspec.json.encode(event_object(event)))]
