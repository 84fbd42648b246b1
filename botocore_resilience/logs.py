"""What the library logs, on logger ``botocore_resilience`` (what operators read in it:
``docs/runbook.md``).

Lines carry circuit names, services, operations, buckets, object keys, attempt
numbers and short reasons (error codes, statuses, exception class names). Never
credentials, signatures, request or response bodies, or exception messages (which
can echo any of those).

Every module logs through :data:`logger`, which never raises: a logging handler of the
application's that raises (instead of calling ``handleError``) must not fail an AWS
call, nor ``install()``. Messages carry no ``botocore_resilience:`` prefix: the
logger's name already says it, and formats that show the name would print it twice.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from .breaker import FORCED, RATE_CAUSE, CircuitState, Transition

__all__ = ["Retry", "call_safely", "log_internal_error", "log_retry", "log_transition", "logger"]

if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:  # not subscriptable at run time before Python 3.11
    _Adapter = logging.LoggerAdapter


class _NeverRaises(_Adapter):
    """Our logger, wrapped so that no record can raise into the code that logs it.

    Everything but logging itself (``handlers``, ``addHandler``, ``level``...) is the
    wrapped logger's. Records keep the caller's ``extra`` and show the caller's
    function and line, as the plain logger's would.
    """

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return msg, kwargs  # LoggerAdapter's own would replace the caller's ``extra``

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        try:
            if self.logger.isEnabledFor(level):
                # One frame more than a plain logger call: this method.
                kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
                self.logger.log(level, msg, *args, **kwargs)
        except Exception:
            # A handler failed (or a message did not format): there is nowhere left to
            # say so that could not fail the same way, and the caller must go on.
            pass

    def __getattr__(self, name: str) -> Any:
        if name == "logger":  # not set yet (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self.logger, name)


logger = _NeverRaises(logging.getLogger("botocore_resilience"), {})
"""The ``botocore_resilience`` logger, for every module of the package: it never raises."""


def log_transition(transition: Transition, recovery_timeout: float) -> None:
    try:
        _log_transition(transition, recovery_timeout)
    except Exception:
        log_internal_error("logging")


def _log_transition(transition: Transition, recovery_timeout: float) -> None:
    # Every record carries the Transition itself as ``record.transition``: a structured hook
    # for log processors (and our demo), so nobody has to parse the words below.
    extra = {"transition": transition}
    name = transition.circuit_name
    # The open period as drawn (doubled after failed probes, jitter included), to a tenth
    # of a second; the setting where a transition does not carry it.
    open_for = round(transition.open_for or recovery_timeout, 1)
    cause = transition.cause or "unknown"
    if transition.to_state is CircuitState.OPEN and cause == FORCED:
        logger.warning(
            "circuit %s OPEN: forced by an operator; every call fails fast until it is reset",
            name,
            extra=extra,
        )
    elif (
        transition.to_state is CircuitState.OPEN and transition.from_state is CircuitState.HALF_OPEN
    ):
        logger.warning(
            "circuit %s OPEN again: a probe failed (%s); calls fail fast for %g s",
            name,
            cause,
            open_for,
            extra=extra,
        )
    elif transition.to_state is CircuitState.OPEN and cause.startswith(RATE_CAUSE):
        logger.warning(
            "circuit %s OPEN: %s; calls fail fast for %g s", name, cause, open_for, extra=extra
        )
    elif transition.to_state is CircuitState.OPEN:
        logger.warning(
            "circuit %s OPEN after %d consecutive failed calls (last: %s); "
            "calls fail fast for %g s",
            name,
            transition.consecutive_failures,
            cause,
            open_for,
            extra=extra,
        )
    elif transition.to_state is CircuitState.CLOSED:
        logger.info(
            "circuit %s CLOSED (was %s: %s)",
            name,
            transition.from_state.value,
            transition.cause,
            extra=extra,
        )
    else:
        logger.info("circuit %s HALF_OPEN: letting a probe through", name, extra=extra)


@dataclass(frozen=True)
class Retry:
    """What a retry log record carries as ``record.retry`` (the object key stays in the text)."""

    service: str
    operation: str
    bucket: str
    attempt: int
    """1 for the first retry (the second request sent)."""
    reason: str
    """Why the previous attempt failed: a status and code, or an exception class name."""


def log_retry(
    service: str, operation: str, bucket: str, key: Optional[str], attempt: int, reason: str
) -> None:
    try:
        if not logger.isEnabledFor(logging.INFO):
            return  # the retry path is hot under throttling: build nothing nobody reads
        reason = reason or "unknown"
        logger.info(
            "retry %d of %s %s bucket=%s key=%s after %s",
            attempt,
            service,
            operation,
            bucket or "-",
            key if key is not None else "-",
            reason,
            extra={"retry": Retry(service, operation, bucket, attempt, reason)},
        )
    except Exception:
        # A handler whose emit() raises (instead of calling handleError) must not fail
        # the AWS call, nor skip the retry's metric that the caller records next.
        log_internal_error("logging")


_reported: set[str] = set()
_reported_lock = threading.Lock()


def log_internal_error(where: str) -> None:
    """Log a failure inside our own handlers: WARNING with the traceback the first time
    for each place, DEBUG after that, so a broken registry cannot flood the logs.

    Never raises, even when a logging handler does: this is what every guard calls."""
    with _reported_lock:
        first = where not in _reported
        _reported.add(where)
    # If logging itself is failing there is nowhere left to say so, and we must not raise.
    with contextlib.suppress(Exception):
        error = sys.exc_info()[1]
        if error is not None:
            # Show our failure only, not the exception it happened "during handling of": that
            # one is botocore's, and its message can hold a URL or a service's error text.
            error.__suppress_context__ = True
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "internal error in %s ignored; the AWS call is unaffected",
            where,
            exc_info=True,
        )


def call_safely(where: str, function: Callable[..., Any], *args: Any) -> None:
    """Call ``function``; log and swallow anything it raises (metrics never break a call)."""
    try:
        function(*args)
    except Exception:
        log_internal_error(where)
