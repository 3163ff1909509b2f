"""Which waiting rows run next: a fair share of the engine between projects.

The engine runs at most `capacity` rows at once. Rows wait per project, first come first served
within a project, and each free place goes to the waiting project that runs the fewest rows
(max-min fairness): a project that sends 512 rows takes the places nobody else wants, never all of
them. When no place is free and a waiting project runs at least two rows fewer than the one that
runs the most, one of the latter's rows is preempted: it leaves its batch with the tokens it
generated and waits first in its project's line, to be prefilled again when a place frees. That
recomputes its cache, which costs less than making a short request wait for a long one to end (vLLM
preempts by recomputing too); the row chosen is the one cheapest to recompute.
"""

from collections import defaultdict, deque

from server.serving.generation import Row


class FairQueue:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self._waiting: dict[str, deque[Row]] = {}  # by project, in the order the projects started waiting
        self._running: dict[str, list[Row]] = defaultdict(list)

    @property
    def busy(self) -> bool:
        return bool(self._waiting) or any(self._running.values())

    def rows(self) -> list[Row]:
        """Every row waiting or running."""
        return [row for rows in (*self._waiting.values(), *self._running.values()) for row in rows]

    def add(self, rows: list[Row]) -> None:
        for row in rows:
            self._waiting.setdefault(row.project, deque()).append(row)

    def ended(self, rows: list[Row]) -> None:
        """Rows that left the engine: they ended, or their client went away."""
        gone = {id(row) for row in rows}
        for project, running in list(self._running.items()):
            self._running[project] = [row for row in running if id(row) not in gone]

    def drop_cancelled(self) -> None:
        """Forget waiting rows whose client went away."""
        for project, waiting in list(self._waiting.items()):
            kept = deque(row for row in waiting if not row.owner.cancelled)
            if kept:
                self._waiting[project] = kept
            else:
                del self._waiting[project]

    def plan(self) -> tuple[list[Row], list[Row]]:
        """The rows to start now, and the running rows to preempt for them."""
        admit: list[Row] = []
        preempt: list[Row] = []
        running = sum(len(rows) for rows in self._running.values())
        while self._waiting:
            project = min(self._waiting, key=lambda name: len(self._running[name]))
            if running >= self.capacity:
                victim = self._victim(project, admit)
                if victim is None:
                    break
                self._running[victim.project].remove(victim)
                self._waiting.setdefault(victim.project, deque()).appendleft(victim)
                preempt.append(victim)
                running -= 1
            waiting = self._waiting[project]
            row = waiting.popleft()
            if not waiting:
                del self._waiting[project]
            self._running[project].append(row)
            admit.append(row)
            running += 1
        return admit, preempt

    def _victim(self, needy: str, admitted_now: list[Row]) -> Row | None:
        richest = max(self._running, key=lambda name: len(self._running[name]))
        if len(self._running[richest]) - len(self._running[needy]) < 2:
            return None
        fresh = {id(row) for row in admitted_now}  # not in a batch yet: nothing to preempt
        candidates = [row for row in self._running[richest] if id(row) not in fresh]
        if not candidates:
            return None
        return min(candidates, key=lambda row: len(row.prompt_ids) + len(row.generated))
