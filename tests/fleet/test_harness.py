"""The fleet harness itself: a wait for one event ends at its deadline, however busy the
worker's event stream is (a wait that other events kept extending once held the whole
store-failure test until pytest's timeout)."""

from __future__ import annotations

import itertools
import queue
from typing import Any

import pytest

from . import fleet
from .fleet import Worker


class _Chatty:
    """A worker's event queue that always has another event, until asked not to wait."""

    def __init__(self) -> None:
        self.given = 0

    def get(self, timeout: float) -> dict[str, Any]:
        if timeout <= 0:
            raise queue.Empty
        if self.given == 100:  # what a deadline that never ends does
            raise RuntimeError("the wait went on past its deadline")
        self.given += 1
        return {"ev": "transition", "to": "half_open"}


class _Clock:
    """Each reading is one second after the one before."""

    def __init__(self) -> None:
        self._ticks = itertools.count()

    def monotonic(self) -> float:
        return float(next(self._ticks))


def test_a_wait_ends_at_its_deadline_while_other_events_keep_coming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = Worker.__new__(Worker)
    worker.index, worker.seen, worker.stderr = 7, [], []
    worker.events = _Chatty()  # type: ignore[assignment]
    monkeypatch.setattr(fleet, "time", _Clock(), raising=False)
    with pytest.raises(AssertionError, match="worker 7: no transition"):
        worker.wait_for("transition", deadline=3.0, to="closed")
    assert len(worker.seen) == 2  # those that came in time, kept for later waits
