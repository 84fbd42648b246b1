"""A clock that only moves when told to."""

from __future__ import annotations

import threading

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`botocore_resilience.clock.Clock` for tests: time stands still until advanced.

    >>> clock = FakeClock()
    >>> clock.monotonic()
    0.0
    >>> clock.advance(60)
    >>> clock.monotonic()
    60.0
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (never backward: this is a monotonic clock)."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back (advance({seconds!r}))")
        with self._lock:
            self._now += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"
