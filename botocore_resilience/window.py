"""Calls and failures over the last ``window`` seconds: a ring of time buckets.

The failure-rate trigger (``docs/explanation/failure-rate-and-slow-calls.md``) asks, on
every judged call, "of the calls judged in the last ``window`` seconds, how many failed?".
Keeping every call would cost memory and time in proportion to the traffic; instead the
window is cut into :data:`BUCKETS` buckets of ``window / BUCKETS`` seconds, each holding
two counters, and running totals over the ring are kept, so that a call costs the same
whatever the traffic:

* find the bucket of ``now`` (one division);
* if time has moved past buckets since the last call, empty them, taking their counts
  off the totals (at most :data:`BUCKETS` of them, however long the gap: O(1));
* add one call (and one failure) to the bucket and to the totals.

Coverage: a call is counted while its bucket is one of the newest :data:`BUCKETS`, so a
call younger than ``window * (BUCKETS - 1) / BUCKETS`` always counts and one older than
``window`` never does.

Thread-safe with one short lock per call: a handful of integer updates, never anything
that can block. Time is whatever clock the caller reads (the breaker's), passed in.

>>> window = RateWindow(10.0)
>>> window.record(0.0, failed=True), window.record(1.0, failed=False)
((1, 1), (2, 1))
>>> window.record(11.5, failed=False)  # the calls at 0 s and 1 s have left the window
(1, 0)
"""

from __future__ import annotations

from . import _fork

__all__ = ["BUCKETS", "RateWindow"]

BUCKETS = 10
"""Buckets per window: the window forgets calls in steps of a tenth of its length."""

_NONE_YET = -(2**62)  # below any bucket number a clock gives


class RateWindow:
    """Judged calls and failures over the last ``seconds``, in :data:`BUCKETS` buckets."""

    __slots__ = (
        "_calls",
        "_failures",
        "_index",
        "_lock",
        "_total_calls",
        "_total_failures",
        "_width",
    )

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"a window must last > 0 seconds, not {seconds!r}")
        self._width = seconds / BUCKETS
        self._calls = [0] * BUCKETS
        self._failures = [0] * BUCKETS
        self._total_calls = 0
        self._total_failures = 0
        self._index = _NONE_YET  # the bucket number (time // width) of the newest call
        self._lock = _fork.new_lock()  # released in a forked child (see _fork)

    @property
    def seconds(self) -> float:
        return self._width * BUCKETS

    def record(self, now: float, failed: bool) -> tuple[int, int]:
        """Count one judged call at ``now``; ``(calls, failures)`` in the window after it."""
        index = int(now // self._width)
        with self._lock:
            slot = self._advance(index)
            self._calls[slot] += 1
            self._total_calls += 1
            if failed:
                self._failures[slot] += 1
                self._total_failures += 1
            return self._total_calls, self._total_failures

    def totals(self, now: float) -> tuple[int, int]:
        """``(calls, failures)`` in the window at ``now``, counting nothing."""
        with self._lock:
            self._advance(int(now // self._width))
            return self._total_calls, self._total_failures

    def clear(self) -> None:
        """Forget every call (the circuit closed: it starts judging afresh)."""
        with self._lock:
            for slot in range(BUCKETS):
                self._calls[slot] = 0
                self._failures[slot] = 0
            self._total_calls = self._total_failures = 0
            self._index = _NONE_YET

    def _advance(self, index: int) -> int:
        """Empty the buckets that time has moved past since the newest call; the slot a
        call at bucket number ``index`` goes to (lock held)."""
        last = self._index
        if index <= last:
            # The newest bucket, or an older one: the clock went back, or this thread read
            # it just before another that recorded first. The call lands in the newest
            # bucket rather than in one already emptied: never lost, never counted twice.
            return last % BUCKETS
        # Each bucket after the newest one, up to ``index``, holds calls older than the
        # window: at most a full ring of them, however long the gap.
        for stale in range(max(last + 1, index - BUCKETS + 1), index + 1):
            slot = stale % BUCKETS
            self._total_calls -= self._calls[slot]
            self._total_failures -= self._failures[slot]
            self._calls[slot] = 0
            self._failures[slot] = 0
        self._index = index
        return index % BUCKETS

    def __repr__(self) -> str:
        return (
            f"RateWindow(seconds={self.seconds:g}, calls={self._total_calls}, "
            f"failures={self._total_failures})"
        )
