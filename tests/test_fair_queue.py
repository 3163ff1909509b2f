"""The engine's fair share between projects: free places go to the project running the fewest rows, and
a project far below its share preempts the cheapest row of the one running the most."""

import torch

from server.serving.fair_queue import FairQueue
from server.serving.generation import Row, Sampler
from server.serving.params import SamplingParams


def _rows(project: str, count: int, prompt_tokens: int = 4) -> list[Row]:
    sampler = Sampler(SamplingParams(), 8, torch.device("cpu"))
    return [Row(owner=None, choice=index, prompt_ids=[1] * prompt_tokens, adapter="__base__", sampler=sampler,
                text=None, max_new_tokens=8, eos_ids=frozenset(), project=project)  # type: ignore[arg-type]
            for index in range(count)]


def _count(rows: list[Row], project: str) -> int:
    return sum(row.project == project for row in rows)


def test_one_project_takes_every_free_place_and_waits_in_order():
    queue = FairQueue(capacity=4)
    many = _rows("a", 10)
    queue.add(many)
    admitted, preempted = queue.plan()
    assert admitted == many[:4] and preempted == []
    assert queue.plan() == ([], [])  # full, and nobody else waits
    queue.ended(many[:2])
    assert queue.plan() == (many[4:6], [])


def test_free_places_go_round_robin_to_the_projects_running_fewest():
    queue = FairQueue(capacity=6)
    queue.add(_rows("a", 10))
    queue.add(_rows("b", 10))
    queue.add(_rows("c", 1))
    admitted, _ = queue.plan()
    assert [row.project for row in admitted] == ["a", "b", "c", "a", "b", "a"]


def test_a_newcomer_preempts_the_cheapest_row_of_the_project_running_most():
    queue = FairQueue(capacity=4)
    first = _rows("a", 3, prompt_tokens=10) + _rows("a", 1, prompt_tokens=2)
    queue.add(first)
    queue.plan()
    first[0].generated = [5] * 20  # the others' rows are further along: dearer to recompute
    short, = _rows("b", 1)
    queue.add([short])
    admitted, preempted = queue.plan()
    assert admitted == [short]
    assert preempted == [first[3]]  # 2 prompt tokens, nothing generated: the cheapest
    # It waits first in its project's line, and comes back when a place frees.
    queue.ended([short])
    assert queue.plan() == ([first[3]], [])


def test_no_preemption_when_shares_differ_by_less_than_two():
    queue = FairQueue(capacity=3)
    queue.add(_rows("a", 2))
    queue.add(_rows("b", 1))
    queue.plan()
    queue.add(_rows("b", 1))
    assert queue.plan() == ([], [])  # a runs 2, b runs 1: preempting would only swap who waits


def test_a_512_row_request_leaves_a_share_to_others():
    queue = FairQueue(capacity=32)
    queue.add(_rows("bulk", 512))
    queue.plan()
    queue.add(_rows("chat", 1))
    queue.add(_rows("other", 3))
    admitted, preempted = queue.plan()
    assert _count(admitted, "chat") == 1 and _count(admitted, "other") == 3
    assert len(preempted) == 4 and all(row.project == "bulk" for row in preempted)
    assert queue.busy
