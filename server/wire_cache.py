"""The wire JSON of jobs and events, kept encoded, so that polling costs next to nothing.

Clients poll: a job's retrieve and its events, the job list. Most of what they read has not changed
since their last poll, and building it again (SQLite writing the row, msgspec reading it, the
presenter, msgspec writing the answer) was most of a list's cost. Here each job's answer is kept per
version of its row (storage raises `row_version` with every change, so a changed job is a new key)
and each event's per id (events never change); a poll reads only ids and versions, and builds just
what it has not seen. Both stores are bounded, least recently used out first.
"""

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar, cast

import msgspec

from server.presenters import event_object, job_object
from storage.jobs import JobRepository

# Rows fetched in one query when building what is missing (well under SQLite's limit on parameters).
FETCH_CHUNK = 500

_encode = msgspec.json.Encoder().encode
K = TypeVar("K", bound=Hashable)


class _Encoded(Generic[K]):
    """A bounded store of encoded answers, least recently used out first."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._answers: OrderedDict[K, msgspec.Raw] = OrderedDict()

    def answers(self, keys: list[K], id_of: Callable[[K], str],
                build: Callable[[list[str]], Iterable[tuple[K, msgspec.Raw]]]) -> list[msgspec.Raw]:
        """The answers for `keys`, in order; those not kept are built, by id, from storage."""
        found = [self._answers.get(key) for key in keys]
        for key, answer in zip(keys, found, strict=True):
            if answer is not None:
                self._answers.move_to_end(key)
        if None not in found:  # a poll of what has not changed: nothing to build
            return cast(list[msgspec.Raw], found)
        built: dict[str, msgspec.Raw] = {}
        missing = [id_of(key) for key, answer in zip(keys, found, strict=True) if answer is None]
        for start in range(0, len(missing), FETCH_CHUNK):
            for key, fresh in build(missing[start:start + FETCH_CHUNK]):
                built[id_of(key)] = self._answers[key] = fresh
        while len(self._answers) > self.max_entries:
            self._answers.popitem(last=False)
        return [answer or built[id_of(key)] for key, answer in zip(keys, found, strict=True)]


class WireCache:
    def __init__(self, jobs: JobRepository, max_jobs: int = 10_000, max_events: int = 50_000):
        self.jobs = jobs
        self._jobs: _Encoded[tuple[str, int]] = _Encoded(max_jobs)
        self._events: _Encoded[str] = _Encoded(max_events)

    def jobs_json(self, keys: list[tuple[str, int]]) -> list[msgspec.Raw]:
        """The wire JSON of the jobs named by (id, row version), in that order."""
        return self._jobs.answers(keys, lambda key: key[0], lambda ids: (
            ((job.id, version), msgspec.Raw(_encode(job_object(job)))) for job, version in self.jobs.versioned(ids)
        ))

    def events_json(self, event_ids: list[str]) -> list[msgspec.Raw]:
        """The wire JSON of the events, in that order."""
        return self._events.answers(event_ids, lambda event_id: event_id, lambda ids: (
            (event.id, msgspec.Raw(_encode(event_object(event)))) for event in self.jobs.events(ids)
        ))
