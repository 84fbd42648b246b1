"""Late verdicts: a streaming response body that fails after the headers.

A call such as ``GetObject`` ends, for botocore, when the headers arrive; the service's
answer is the body, read afterwards by the caller. A body that stalls (read timeout) or is
cut short (connection dropped, fewer bytes than ``Content-Length``) means the service failed
that call. So for a streaming 2xx on a closed circuit, the call's verdict waits for its body
(docs/explanation/what-counts.md):

* the body read to its end: a success, recorded then;
* a read failing with a transport fault: a failure, recorded then, once;
* the body closed early, or never read: no verdict (the caller chose not to read it).

Nothing is copied: the body's own ``read`` is replaced by a function that calls it and
looks at what comes back. Everything that reads the body (``iter_chunks``, ``iter_lines``,
s3transfer's downloads) goes through ``read``. A probe's verdict is not deferred: a
half-open circuit must not wait for a body that may never be read.
"""

from __future__ import annotations

from typing import Any, Optional

from botocore.exceptions import IncompleteReadError
from botocore.response import StreamingBody

from .breaker import CircuitBreaker, Outcome, Permit
from .classification import describe_attempt, is_failure_exception
from .logs import log_internal_error
from .state import one_wait

__all__ = ["LATE_CAUSE", "watch_body"]

LATE_CAUSE = "body"
"""How the cause of a late failure begins: ``"body: ReadTimeoutError"``."""

_SUCCESS = Outcome.SUCCESS
_FAILURE = Outcome.FAILURE
_DEFERRED = Outcome.NOT_COUNTED


def watch_body(body: Any, breaker: CircuitBreaker, permit: Optional[Permit]) -> Outcome:
    """Watch ``body`` and return what the call's breaker should hear now: ``NOT_COUNTED``
    when the verdict is deferred to the body, ``SUCCESS`` when it is not (a probe, or a
    body that is not botocore's :class:`~botocore.response.StreamingBody`)."""
    if permit is None or permit.probe_id or not isinstance(body, StreamingBody):
        return _SUCCESS
    read = body.read
    judged = False

    def watched_read(amt: Optional[int] = None) -> bytes:
        nonlocal judged
        try:
            chunk: bytes = read(amt)
        except Exception as error:
            if not judged:
                judged = True
                _late(breaker, permit, error)
            raise
        if not judged and (amt is None or amt < 0 or (not chunk and amt > 0)):
            judged = True  # the whole body was read
            _record(breaker, permit, _SUCCESS, "")
        return chunk

    body.read = watched_read
    return _DEFERRED


def _late(breaker: CircuitBreaker, permit: Permit, error: BaseException) -> None:
    if is_failure_exception(error) or isinstance(error, IncompleteReadError):
        _record(breaker, permit, _FAILURE, f"{LATE_CAUSE}: {describe_attempt(None, None, error)}")


def _record(breaker: CircuitBreaker, permit: Permit, outcome: Outcome, cause: str) -> None:
    # Runs in the caller's read(): an error of ours must never replace what read() returns
    # or raises.
    try:
        with one_wait():  # the call is over; its body's verdict may wait on a store once
            breaker.record(permit, outcome, cause)
    except Exception:
        log_internal_error("body read")
