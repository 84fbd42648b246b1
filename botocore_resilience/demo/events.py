"""The plugin's log records as demo events, read from their structured attributes.

Every transition record carries ``record.transition`` (a :class:`~botocore_resilience.Transition`)
and every retry record ``record.retry`` (a :class:`~botocore_resilience.logs.Retry`): the
words of the messages are for people and may change, so nothing here parses them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Callable

from ..breaker import CircuitState, Transition
from .tally import TransitionSeen

__all__ = ["LogWatcher", "describe", "watching"]


def describe(transition: Transition, failure_threshold: int) -> TransitionSeen:
    """``transition`` in the timeline's words, from its fields alone."""
    to, cause = transition.to_state, transition.cause or "unknown"
    if to is CircuitState.HALF_OPEN:
        detail = "letting a probe through"
    elif to is CircuitState.CLOSED:
        detail = cause
    elif transition.from_state is CircuitState.HALF_OPEN:
        detail = f"a probe failed ({cause})"
    elif transition.consecutive_failures >= failure_threshold:
        detail = f"after {transition.consecutive_failures} consecutive failed calls (last: {cause})"
    else:  # another trigger (a failure rate, a forced opening): its cause says which
        detail = cause
    return TransitionSeen(
        transition.circuit_name, transition.from_state.name, to.name, detail, transition.seq
    )


class LogWatcher(logging.Handler):
    """Turns the plugin's log records into events: transitions, retries, warnings."""

    def __init__(
        self,
        failure_threshold: int,
        on_transition: Callable[[TransitionSeen], None],
        on_retry: Callable[[str], None],
        on_warning: Callable[[str], None],
    ) -> None:
        super().__init__(logging.INFO)
        self._threshold = failure_threshold
        self._on_transition = on_transition
        self._on_retry = on_retry
        self._on_warning = on_warning

    def emit(self, record: logging.LogRecord) -> None:
        try:
            transition: Any = getattr(record, "transition", None)
            retry: Any = getattr(record, "retry", None)
            if transition is not None:
                self._on_transition(describe(transition, self._threshold))
            elif retry is not None:
                self._on_retry(retry.reason)
            elif record.levelno >= logging.WARNING:
                self._on_warning(f"{record.levelname}: {record.getMessage()}")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def watching(handler: logging.Handler) -> Iterator[None]:
    """Route the plugin's logger to ``handler`` alone while the block runs."""
    logger = logging.getLogger("botocore_resilience")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the timeline says it all; no second copy via the root logger
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
