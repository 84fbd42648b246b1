"""One path for everything we observe: events fanned out to subscribers (metrics, logs).

The handlers and the circuits tell one :class:`Observers` what happened; it calls
every subscriber that listens to that event, in order, each through its own guard,
as stamina fans one retry out to its hooks. Metrics and logs are two subscribers;
an OpenTelemetry sink or a user's ``on_transition`` callback is one more, added
where the runtime is built (:func:`botocore_resilience.runtime.build_runtime`).

=================================================================  ==============================
event                                                              when
=================================================================  ==============================
``call_finished(service, operation, bucket, result, duration)``    once per logical call
``retry_made(service, operation, bucket, key, attempt, reason)``   once per retry made
``quota_exhausted(service, operation)``                            botocore's retry quota ran out
``transition(transition)``                                         a circuit changed state
``circuit_added(breaker)``                                         a circuit was created
``circuit_removed(breaker)``                                       a circuit was evicted
=================================================================  ==============================

``result`` is one of :data:`RESULTS`; ``duration`` is ``None`` for a call that was
never sent; ``attempt`` is 1 for a call's first retry.

>>> class Printer(Observer):
...     def call_finished(self, service, operation, bucket, result, duration):
...         print(service, operation, result)
>>> observers = Observers([("printer", Printer())])
>>> observers.call_finished("s3", "GetObject", "photos", SUCCESS, 0.01)
s3 GetObject success
>>> observers.quota_exhausted("s3", "GetObject")   # nobody listens: nothing happens
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Final, Literal, Optional

from .breaker import CircuitBreaker, Transition
from .logs import log_internal_error, log_retry, log_transition, logger

__all__ = [
    "CIRCUIT_OPEN",
    "ERROR",
    "EVENTS",
    "RESULTS",
    "SUCCESS",
    "CallResult",
    "LogObserver",
    "MetricsObserver",
    "Observer",
    "Observers",
    "TransitionCallback",
]

# -- the one vocabulary for a call's result (the ``result`` label of N_operations_total) --

SUCCESS: Final = "success"
"""The service answered: 2xx/3xx, or a service error such as ``NoSuchKey``."""
ERROR: Final = "error"
"""The call raised (or ended in an error response) and was sent or tried to be."""
CIRCUIT_OPEN: Final = "circuit_open"
"""An open circuit rejected the call before anything was sent."""

CallResult = Literal["success", "error", "circuit_open"]
RESULTS: Final = (SUCCESS, ERROR, CIRCUIT_OPEN)

EVENTS: Final = (
    "call_finished",
    "retry_made",
    "quota_exhausted",
    "transition",
    "circuit_added",
    "circuit_removed",
)

Hook = Callable[..., None]


class Observer:
    """A subscriber. Override the events you want to hear; the others are never called.

    A method may raise: the fan-out logs it (once loudly, then quietly) and goes on
    with the next subscriber, and the AWS call never notices.
    """

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None:
        """One logical call ended (or was rejected: ``result`` is ``"circuit_open"``)."""

    def retry_made(
        self,
        service: str,
        operation: str,
        bucket: str,
        key: Optional[str],
        attempt: int,
        reason: str,
    ) -> None:
        """botocore is sending retry number ``attempt`` of a call; ``reason`` says why."""

    def quota_exhausted(self, service: str, operation: str) -> None:
        """botocore's retry quota ran out on a call."""

    def transition(self, transition: Transition) -> None:
        """A circuit changed state (told outside the breaker's lock, maybe out of order:
        see :attr:`Transition.seq`)."""

    def circuit_added(self, breaker: CircuitBreaker) -> None:
        """A circuit was created (told under the registry's lock: be quick)."""

    def circuit_removed(self, breaker: CircuitBreaker) -> None:
        """A circuit was evicted (see ``max_circuits``; told under the registry's lock)."""

    def hooks(self) -> dict[str, Hook]:
        """``{event: callable}`` for the events this subscriber hears: by default, the
        methods a subclass overrides."""
        return {
            event: getattr(self, event)
            for event in EVENTS
            if getattr(type(self), event) is not getattr(Observer, event)
        }


class MetricsObserver(Observer):
    """Metrics as a subscriber: hands each event to a metrics sink (``metrics.MetricsSink``).

    :meth:`hooks` gives the sink's own bound methods where the signatures agree, so
    the per-call event costs no extra frame.
    """

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    def hooks(self) -> dict[str, Hook]:
        sink = self.sink
        return {
            "call_finished": sink.call_finished,
            "retry_made": self.retry_made,
            "quota_exhausted": sink.quota_exhausted,
            "transition": sink.transition,
            "circuit_added": self.circuit_added,
            "circuit_removed": self.circuit_removed,
        }

    def retry_made(
        self,
        service: str,
        operation: str,
        bucket: str,
        key: Optional[str],
        attempt: int,
        reason: str,
    ) -> None:
        # The retry family is labelled by service, operation and attempt only: bucket,
        # key and reason are for the log line.
        self.sink.retry_made(service, operation, attempt)

    def circuit_added(self, breaker: CircuitBreaker) -> None:
        self.sink.circuit_added(breaker.name, breaker.state, breaker)

    def circuit_removed(self, breaker: CircuitBreaker) -> None:
        self.sink.circuit_removed(breaker.name, breaker)


class LogObserver(Observer):
    """Logging as a subscriber: transitions and retries on logger ``botocore_resilience``
    (``docs/runbook.md`` says what operators read in each line)."""

    def __init__(self, recovery_timeout: float) -> None:
        self._recovery_timeout = recovery_timeout

    def retry_made(
        self,
        service: str,
        operation: str,
        bucket: str,
        key: Optional[str],
        attempt: int,
        reason: str,
    ) -> None:
        log_retry(service, operation, bucket, key, attempt, reason)

    def transition(self, transition: Transition) -> None:
        log_transition(transition, self._recovery_timeout)


class TransitionCallback(Observer):
    """The user's ``install(..., on_transition=callback)`` as a subscriber.

    The fan-out calls it outside every lock, after the metrics and logs. Whatever it
    raises is logged at WARNING with the exception, every time (transitions are rare,
    and a user debugging their callback wants each one), and the call goes on.
    """

    def __init__(self, callback: Callable[[Transition], None]) -> None:
        self.callback = callback

    def transition(self, transition: Transition) -> None:
        try:
            self.callback(transition)
        except Exception:
            logger.warning(
                "on_transition callback raised on %s -> %s of circuit %s; ignored",
                transition.from_state.value,
                transition.to_state.value,
                transition.circuit_name,
                exc_info=True,
            )


class Observers:
    """The fan-out: one attribute per event, each a callable that never raises, but one.

    Built once per runtime; an event nobody hears is a no-op, an event one subscriber
    hears costs one guard frame before that subscriber's own method.

    The exception is :attr:`call_finished`, told on every call: heard by exactly one
    subscriber (metrics, usually), it *is* that subscriber's own method, without the
    guard frame, and may raise; the caller guards it and logs a failure under
    :attr:`call_finished_by`. Heard by several, it guards each, like the other events.
    """

    __slots__ = ("call_finished_by", "subscribers", *EVENTS)

    call_finished: Callable[[str, str, str, str, Optional[float]], None]
    retry_made: Callable[[str, str, str, Optional[str], int, str], None]
    quota_exhausted: Callable[[str, str], None]
    transition: Callable[[Transition], None]
    circuit_added: Callable[[CircuitBreaker], None]
    circuit_removed: Callable[[CircuitBreaker], None]

    def __init__(self, subscribers: Sequence[tuple[str, Observer]]) -> None:
        self.subscribers = tuple(subscribers)
        """``(name, subscriber)`` pairs, in calling order; ``name`` is what a failure is
        logged under (``"metrics"``, ``"logging"``, ...)."""
        hooks = [(name, subscriber.hooks()) for name, subscriber in self.subscribers]

        def hearing(event: str) -> list[tuple[str, Hook]]:
            return [(name, by_event[event]) for name, by_event in hooks if event in by_event]

        finishing = hearing("call_finished")
        self.call_finished = _call_finished_fan_out(finishing)
        self.call_finished_by = finishing[0][0] if len(finishing) == 1 else "observers"
        """What a failure of :attr:`call_finished` is logged under."""
        for event in EVENTS[1:]:
            setattr(self, event, _fan_out(hearing(event)))

    def __repr__(self) -> str:
        return f"Observers({[name for name, _subscriber in self.subscribers]})"


def _ignore(*args: Any) -> None:
    pass


def _fan_out(hooks: list[tuple[str, Hook]]) -> Hook:
    if not hooks:
        return _ignore
    if len(hooks) == 1:
        ((where, hook),) = hooks

        def call_one(*args: Any) -> None:
            try:
                hook(*args)
            except Exception:
                log_internal_error(where)

        return call_one

    def call_each(*args: Any) -> None:
        for where, hook in hooks:
            try:
                hook(*args)
            except Exception:
                log_internal_error(where)

    return call_each


def _call_finished_fan_out(hooks: list[tuple[str, Hook]]) -> Hook:
    """The fan-out of the event of every call, which spends no frame of its own where it
    can: the one subscriber's method itself (the caller guards it), and a no-op that
    names its parameters (no ``*args`` tuple) when nobody listens."""
    if len(hooks) == 1:
        return hooks[0][1]
    if hooks:
        return _fan_out(hooks)
    return _no_call_finished


def _no_call_finished(
    service: str, operation: str, bucket: str, result: str, duration: Optional[float]
) -> None:
    pass
