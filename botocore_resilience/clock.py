"""Where the library reads time.

Everything that measures time (breaker timeouts, call durations) takes a
:class:`Clock`, so tests move time by hand instead of sleeping. The default is
:data:`MONOTONIC`, backed by :func:`time.monotonic`: wall-clock time jumps
(NTP, DST) must never open or close a circuit.

Code on the per-call path does not ask "is this the default clock?" on every call:
it reads :func:`reader_of`'s callable, chosen once when the runtime is built.
"""

from __future__ import annotations

import time
from typing import Callable, Optional, Protocol, runtime_checkable

__all__ = ["MONOTONIC", "Clock", "MonotonicClock", "reader_of"]


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


def reader_of(clock: Optional[Clock]) -> Callable[[], float]:
    """The function that reads ``clock``: :func:`time.monotonic` itself for the default
    clock (``None`` or :data:`MONOTONIC`: no wrapper's frame per read), else its
    ``monotonic`` method.

    >>> reader_of(None) is time.monotonic
    True
    >>> from botocore_resilience.testing import FakeClock
    >>> reader_of(FakeClock(5.0))()
    5.0
    """
    if clock is None or clock is MONOTONIC:
        return time.monotonic
    return clock.monotonic
