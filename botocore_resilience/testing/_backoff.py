"""A switch that takes the waiting out of botocore's retries, for test suites.

botocore waits in exactly two places when it retries:

1. ``botocore.endpoint``: after a retryable attempt, the endpoint calls
   ``time.sleep(delay)`` with the delay the ``needs-retry`` handlers returned
   (legacy, standard and adaptive modes alike, and any handler of our own that
   answers ``needs-retry``).
2. ``botocore.retries.bucket.TokenBucket.acquire``: in adaptive mode, once
   throttling errors (``SlowDown``, ``Throttling``, ...) have switched on the
   client-side rate limiter, every attempt takes a token first and waits on a
   ``threading.Condition`` until one is available.

:func:`no_backoff` replaces both, process-wide, while it is active:

* the name ``time`` in the module ``botocore.endpoint`` is rebound to a stand-in
  whose ``sleep`` records the delay and returns at once (every other attribute is
  the real :mod:`time` module's);
* the method ``TokenBucket.acquire`` is replaced by one that asks the real method
  for a token without blocking (``block=False``) and, when none is available,
  records the would-be wait and grants the attempt anyway.

The retry *decisions* are untouched: the same attempts are made, in the same
order, with the same quota accounting; only the waiting goes. Both patches are
the same on botocore 1.31 and 1.43 (the code they replace has not changed).

aiobotocore awaits its own coroutine versions of both waits; when it is installed,
the same block takes those out too (see ``_aio_backoff``), so one switch serves
sync and async test suites alike.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import _aio_backoff

__all__ = ["SkippedBackoff", "no_backoff"]


class SkippedBackoff:
    """What :func:`no_backoff` saved the caller from; a fresh one per ``with`` block.

    Attributes:
        delays: every backoff delay botocore asked to sleep, in seconds, in order.
        token_waits: how many attempts adaptive mode's rate limiter would have held back.

    >>> from botocore_resilience.testing import no_backoff
    >>> with no_backoff() as skipped:
    ...     pass  # calls that would have backed off
    >>> skipped.delays, skipped.token_waits
    ([], 0)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delays: list[float] = []
        self._token_waits = 0

    @property
    def delays(self) -> list[float]:
        with self._lock:
            return list(self._delays)

    @property
    def token_waits(self) -> int:
        with self._lock:
            return self._token_waits

    def _add_delay(self, seconds: float) -> None:
        with self._lock:
            self._delays.append(seconds)

    def _add_token_wait(self) -> None:
        with self._lock:
            self._token_waits += 1

    def __repr__(self) -> str:
        return f"SkippedBackoff(delays={self.delays!r}, token_waits={self.token_waits!r})"


class _SleeplessTime:
    """Stands in for the ``time`` module inside ``botocore.endpoint``: ``sleep`` only records."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def sleep(self, seconds: float) -> None:
        for recorder in _active_recorders():
            recorder._add_delay(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


# Patching state, shared by every active no_backoff() block (they nest, from any thread).
_lock = threading.Lock()
_recorders: list[SkippedBackoff] = []
_originals: dict[str, Any] = {}


def _active_recorders() -> list[SkippedBackoff]:
    with _lock:
        return list(_recorders)


def _acquire_without_waiting(bucket: Any, amount: int = 1, block: bool = True) -> bool:
    from botocore.exceptions import CapacityNotAvailableError

    try:
        return bool(_originals["acquire"](bucket, amount, block=False))
    except CapacityNotAvailableError:
        if not block:
            raise  # a non-blocking caller asked to be told
        for recorder in _active_recorders():
            recorder._add_token_wait()
        return True


def _patch() -> None:
    import botocore.endpoint
    from botocore.retries.bucket import TokenBucket

    _originals["time"] = botocore.endpoint.time
    _originals["acquire"] = TokenBucket.acquire
    botocore.endpoint.time = _SleeplessTime(_originals["time"])  # type: ignore[assignment]
    TokenBucket.acquire = _acquire_without_waiting  # type: ignore[method-assign]
    _aio_backoff.patch(_record_delay, _record_token_wait)


def _record_delay(seconds: float) -> None:
    for recorder in _active_recorders():
        recorder._add_delay(seconds)


def _record_token_wait() -> None:
    for recorder in _active_recorders():
        recorder._add_token_wait()


def _unpatch() -> None:
    import botocore.endpoint
    from botocore.retries.bucket import TokenBucket

    # Put back only what is still ours: if someone patched over us meanwhile, theirs stays.
    if isinstance(botocore.endpoint.time, _SleeplessTime):
        botocore.endpoint.time = _originals["time"]
    if TokenBucket.acquire is _acquire_without_waiting:
        TokenBucket.acquire = _originals["acquire"]  # type: ignore[method-assign]
    _originals.clear()
    _aio_backoff.unpatch()


@contextmanager
def no_backoff() -> Iterator[SkippedBackoff]:
    """Make botocore (and aiobotocore) retry without waiting, in every thread, while the block runs.

    Yields a :class:`SkippedBackoff` that records the waits it skipped, so a test
    can assert that botocore *would* have backed off. Blocks nest and may
    overlap across threads; the patches go when the last one ends.

    >>> from botocore_resilience.testing import no_backoff
    >>> with no_backoff() as skipped:
    ...     import botocore.endpoint
    ...     botocore.endpoint.time.sleep(20)  # what botocore does between attempts
    >>> skipped.delays
    [20]
    """
    recorder = SkippedBackoff()
    with _lock:
        if not _recorders:
            _patch()
        _recorders.append(recorder)
    try:
        yield recorder
    finally:
        with _lock:
            _recorders.remove(recorder)
            if not _recorders:
                _unpatch()
