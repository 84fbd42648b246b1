"""Where the library reads time.

Everything that measures time (breaker timeouts, call durations) takes a
:class:`Clock`, so tests move time by hand instead of sleeping. The default is
:data:`MONOTONIC`, backed by :func:`time.monotonic`: wall-clock time jumps
(NTP, DST) must never open or close a circuit.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["MONOTONIC", "Clock", "MonotonicClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with a ``monotonic()`` method returning seconds as a float."""

    def monotonic(self) -> float: ...


class MonotonicClock:
    """The real clock: :func:`time.monotonic`."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "MonotonicClock()"


MONOTONIC: Clock = MonotonicClock()
