"""handlers.py on its own, fed the arguments botocore really passes.

A plain botocore client (no plugin installed) calls S3 through a stubbed transport
(a ``before-send`` handler answers each attempt, inside botocore's retry loop), and a
recorder on each event ``install()`` registers keeps the keyword arguments botocore
passed, in order. The tests replay them into an :class:`EventHandlers` whose runtime
has a :class:`FakeClock` and a recording observer, and look at what it was told.

Recording from the installed botocore, rather than writing the arguments down, keeps
the tests honest across botocore versions: if botocore renames a keyword or stops
sharing the request context between events, these tests see it. The one thing copied
is ``context["retries"]``, which botocore updates in place before each attempt: each
event is replayed with the value it saw.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional, Union

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError
from prometheus_client import CollectorRegistry

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.handlers import CALL_KEY, EventHandlers
from botocore_resilience.observers import Observer, Observers
from botocore_resilience.runtime import Runtime, build_runtime
from botocore_resilience.testing import FakeClock, no_backoff
from botocore_resilience.testing._stub import StubTransport

# The events install() registers on, and the handler each one calls.
HANDLERS = {
    "before-parameter-build": "on_before_parameter_build",
    "before-call": "on_before_call",
    "request-created": "on_request_created",
    "needs-retry": "on_needs_retry",
    "after-call": "on_after_call",
    "after-call-error": "on_after_call_error",
}
_LOADER = botocore.session.Session().get_component("data_loader")


Answer = Union[int, BaseException]  # an HTTP status, or what the transport raises


class Recorded:
    """The events of one call: ``(event, kwargs, retries at the time)``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], Optional[dict[str, Any]]]] = []
        self.result: Any = None
        self.error: Optional[BaseException] = None

    def names(self) -> list[str]:
        return [event for event, _kwargs, _retries in self.events]

    def kwargs(self, event: str) -> dict[str, Any]:
        return next(kwargs for name, kwargs, _retries in self.events if name == event)


def record_call(answers: Sequence[Answer], *, max_attempts: int = 3) -> Recorded:
    """Make one ``HeadObject`` on a plain client whose attempts get ``answers`` in turn."""
    session = botocore.session.Session()
    session.register_component("data_loader", _LOADER)
    client = session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"mode": "standard", "total_max_attempts": max_attempts}),
    )
    recorded = Recorded()
    pending = list(answers)

    before_send = StubTransport(lambda request: pending.pop(0))

    def recorder(event: str) -> Any:
        def record(**kwargs: Any) -> None:
            context = kwargs.get("context")
            if context is None and "request_dict" in kwargs:
                context = kwargs["request_dict"].get("context")
            if context is None and "request" in kwargs:
                context = kwargs["request"].context
            retries = context.get("retries") if context is not None else None
            recorded.events.append((event, kwargs, dict(retries) if retries else None))

        return record

    for event in HANDLERS:
        client.meta.events.register(f"{event}.s3", recorder(event))
    client.meta.events.register("before-send.s3", before_send)
    with no_backoff():
        try:
            recorded.result = client.head_object(Bucket="photos", Key="cat.jpg")
        except Exception as error:
            recorded.error = error
    assert not pending, "every answer was used"
    return recorded


class Heard(Observer):
    """A subscriber that writes down everything it hears."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []

    def call_finished(self, *args: Any) -> None:  # type: ignore[override]
        self.events.append(("call_finished", args))

    def retry_made(self, *args: Any) -> None:  # type: ignore[override]
        self.events.append(("retry_made", args))

    def quota_exhausted(self, *args: Any) -> None:  # type: ignore[override]
        self.events.append(("quota_exhausted", args))

    def of(self, event: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.events if name == event]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture
def heard() -> Heard:
    return Heard()


def runtime_with(heard: Observer, clock: FakeClock, **options: Any) -> Runtime:
    options.setdefault("jitter", lambda: 0.0)  # exact open periods
    runtime = build_runtime({}, registry=CollectorRegistry(), clock=clock, metrics=False, **options)
    # The subscribers are chosen by the factory; a test adds its own beside them.
    runtime.observers = Observers([*runtime.observers.subscribers, ("test", heard)])
    return runtime


def replay(
    recorded: Recorded,
    handlers: EventHandlers,
    *,
    clock: Optional[FakeClock] = None,
    seconds_per_attempt: float = 0.0,
) -> list[Any]:
    """Call each handler with what botocore passed; returns what the handlers returned."""
    returned = []
    for event, kwargs, retries in recorded.events:
        context = kwargs.get("context")
        if context is None and "request_dict" in kwargs:
            context = kwargs["request_dict"].get("context")
        if context is None and "request" in kwargs:
            context = kwargs["request"].context
        if context is not None and retries is not None:
            context["retries"] = dict(retries)
        if event == "needs-retry" and clock is not None:
            clock.advance(seconds_per_attempt)  # the attempt took this long
        returned.append(getattr(handlers, HANDLERS[event])(**kwargs))
    return returned


# -- what botocore passes ---------------------------------------------------------------------


def test_botocore_passes_every_keyword_the_handlers_name() -> None:
    # The handlers name each keyword (a faster call than **kwargs): botocore must pass them.
    recorded = record_call([200])
    assert recorded.names() == [
        "before-parameter-build",
        "before-call",
        "request-created",
        "needs-retry",
        "after-call",
    ]
    assert {"params", "context", "model"} <= set(recorded.kwargs("before-parameter-build"))
    assert {"model", "context", "params"} <= set(recorded.kwargs("before-call"))
    assert {"request"} <= set(recorded.kwargs("request-created"))
    assert {"response", "attempts", "caught_exception", "request_dict", "operation"} <= set(
        recorded.kwargs("needs-retry")
    )
    assert {"http_response", "parsed", "context", "model"} <= set(recorded.kwargs("after-call"))
    # One dict per call, seen by every event: where the handlers keep the call's state.
    context = recorded.kwargs("before-call")["context"]
    assert recorded.kwargs("after-call")["context"] is context
    assert recorded.kwargs("needs-retry")["request_dict"]["context"] is context
    assert recorded.kwargs("request-created")["request"].context is context


# -- one logical call, judged once ------------------------------------------------------------


def test_a_successful_call_is_told_once_with_its_duration(heard: Heard, clock: FakeClock) -> None:
    runtime = runtime_with(heard, clock)
    replay(record_call([200]), EventHandlers(runtime), clock=clock, seconds_per_attempt=0.25)
    assert heard.events == [("call_finished", ("s3", "HeadObject", "photos", "success", 0.25))]
    assert runtime.circuits is not None
    (breaker,) = runtime.circuits.breakers().values()
    assert breaker.name == "s3/us-east-1"
    assert breaker.consecutive_failures == 0


def test_a_retried_call_tells_each_retry_and_then_the_call_once(
    heard: Heard, clock: FakeClock
) -> None:
    recorded = record_call([503, 503, 200])
    assert recorded.result["ResponseMetadata"]["RetryAttempts"] == 2
    runtime = runtime_with(heard, clock)
    replay(recorded, EventHandlers(runtime), clock=clock, seconds_per_attempt=0.5)
    assert heard.of("retry_made") == [
        ("s3", "HeadObject", "photos", "cat.jpg", 1, "503"),
        ("s3", "HeadObject", "photos", "cat.jpg", 2, "503"),
    ]
    # Judged once, after the retries, with their time included.
    assert heard.of("call_finished") == [("s3", "HeadObject", "photos", "success", 1.5)]
    assert [name for name, _args in heard.events][-1] == "call_finished"


def test_a_call_that_fails_for_good_is_one_failure_for_the_circuit(
    heard: Heard, clock: FakeClock
) -> None:
    closed = ConnectionClosedError(endpoint_url="http://127.0.0.1:9")
    recorded = record_call([closed, closed], max_attempts=2)
    assert isinstance(recorded.error, ConnectionClosedError)
    assert recorded.names()[-1] == "after-call-error"
    runtime = runtime_with(heard, clock)
    replay(recorded, EventHandlers(runtime), clock=clock, seconds_per_attempt=1.0)
    assert heard.of("retry_made") == [
        ("s3", "HeadObject", "photos", "cat.jpg", 1, "ConnectionClosedError")
    ]
    assert heard.of("call_finished") == [("s3", "HeadObject", "photos", "error", 2.0)]
    assert runtime.circuits is not None
    (breaker,) = runtime.circuits.breakers().values()
    assert breaker.consecutive_failures == 1  # once per call, not once per attempt


def test_a_service_error_is_an_error_for_metrics_and_a_success_for_the_circuit(
    heard: Heard, clock: FakeClock
) -> None:
    recorded = record_call([404])
    runtime = runtime_with(heard, clock)
    replay(recorded, EventHandlers(runtime), clock=clock)
    assert heard.of("call_finished") == [("s3", "HeadObject", "photos", "error", 0.0)]
    assert runtime.circuits is not None
    (breaker,) = runtime.circuits.breakers().values()
    assert breaker.consecutive_failures == 0


def test_an_open_circuit_rejects_before_sending_and_tells_circuit_open(
    heard: Heard, clock: FakeClock
) -> None:
    runtime = runtime_with(heard, clock, failure_threshold=1, recovery_timeout=30)
    closed = ConnectionClosedError(endpoint_url="http://127.0.0.1:9")
    replay(record_call([closed], max_attempts=1), EventHandlers(runtime))
    heard.events.clear()

    handlers = EventHandlers(runtime)
    recorded = record_call([200])
    handlers.on_before_parameter_build(**recorded.kwargs("before-parameter-build"))
    with pytest.raises(CircuitBreakerOpen) as raised:
        handlers.on_before_call(**recorded.kwargs("before-call"))
    assert raised.value.circuit_name == "s3/us-east-1"
    assert raised.value.retry_after == 30
    assert heard.events == [("call_finished", ("s3", "HeadObject", "photos", "circuit_open", None))]
    assert CALL_KEY not in recorded.kwargs("before-call")["context"]  # nothing to finish later


def test_a_call_that_was_never_sent_has_no_duration(heard: Heard, clock: FakeClock) -> None:
    # botocore raised before sending (here: the call's own after-call-error, with no
    # needs-retry before it, as for a parameter or credential error).
    recorded = record_call([200])
    runtime = runtime_with(heard, clock)
    handlers = EventHandlers(runtime)
    handlers.on_before_parameter_build(**recorded.kwargs("before-parameter-build"))
    handlers.on_before_call(**recorded.kwargs("before-call"))
    context = recorded.kwargs("before-call")["context"]
    handlers.on_after_call_error(exception=ValueError("invalid parameter"), context=context)
    assert heard.events == [("call_finished", ("s3", "HeadObject", "photos", "error", None))]
    assert runtime.circuits is not None
    (breaker,) = runtime.circuits.breakers().values()
    assert breaker.consecutive_failures == 0  # not counted: nothing was learnt


def test_a_call_on_which_the_retry_quota_ran_out_is_told(heard: Heard, clock: FakeClock) -> None:
    recorded = record_call([200])
    recorded.kwargs("after-call")["parsed"]["ResponseMetadata"]["RetryQuotaReached"] = True
    replay(recorded, EventHandlers(runtime_with(heard, clock)))
    assert heard.of("quota_exhausted") == [("s3", "HeadObject")]


# -- switched off, and never in the way ----------------------------------------------------------


def test_handlers_without_a_runtime_do_nothing() -> None:
    recorded = record_call([503, 200])
    assert replay(recorded, EventHandlers(None)) == [None] * len(recorded.events)
    assert CALL_KEY not in recorded.kwargs("before-call")["context"]


def test_events_of_a_call_that_began_before_the_install_are_ignored(
    heard: Heard, clock: FakeClock
) -> None:
    # Installed mid-call: no before-call was seen, so there is nothing to judge.
    recorded = record_call([503, 200])
    handlers = EventHandlers(runtime_with(heard, clock))
    for event, kwargs, _retries in recorded.events:
        if event not in ("before-parameter-build", "before-call"):
            getattr(handlers, HANDLERS[event])(**kwargs)
    assert heard.events == []


def test_a_broken_observer_never_breaks_the_call_nor_the_circuit(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Observer):
        def call_finished(self, *args: Any) -> None:  # type: ignore[override]
            raise RuntimeError("broken")

        def retry_made(self, *args: Any) -> None:  # type: ignore[override]
            raise RuntimeError("broken")

    heard = Heard()
    runtime = runtime_with(heard, clock, failure_threshold=1)
    runtime.observers = Observers([("broken", Broken()), ("test", heard)])
    closed = ConnectionClosedError(endpoint_url="http://127.0.0.1:9")
    caplog.set_level(logging.DEBUG, logger="botocore_resilience")
    replay(record_call([503, closed], max_attempts=2), EventHandlers(runtime))
    # The next subscriber still heard everything, and the circuit judged the call.
    assert [name for name, _args in heard.events] == ["retry_made", "call_finished"]
    assert runtime.circuits is not None
    (breaker,) = runtime.circuits.breakers().values()
    assert breaker.state is CircuitState.OPEN
    assert any("internal error in broken" in r.getMessage() for r in caplog.records)


def test_a_lone_observer_that_fails_never_breaks_the_call(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Heard by one subscriber, call_finished is its own method, unguarded: the handlers
    # guard it, on the path of an admitted call and on that of a rejected one.
    class Broken(Observer):
        def call_finished(self, *args: Any) -> None:  # type: ignore[override]
            raise RuntimeError("broken")

    runtime = runtime_with(Heard(), clock, failure_threshold=1)
    runtime.observers = Observers([("broken", Broken())])
    caplog.set_level(logging.DEBUG, logger="botocore_resilience")
    closed = ConnectionClosedError(endpoint_url="http://127.0.0.1:9")
    replay(record_call([closed], max_attempts=1), EventHandlers(runtime))
    assert runtime.circuits is not None
    (breaker,) = runtime.circuits.breakers().values()
    assert breaker.state is CircuitState.OPEN
    handlers = EventHandlers(runtime)
    recorded = record_call([200])
    with pytest.raises(CircuitBreakerOpen):  # rejected all the same
        handlers.on_before_call(**recorded.kwargs("before-call"))
    failures = [r for r in caplog.records if "internal error in broken" in r.getMessage()]
    assert len(failures) == 2


def test_a_second_install_swaps_the_runtime_under_the_same_handlers(clock: FakeClock) -> None:
    first, second = Heard(), Heard()
    handlers = EventHandlers(runtime_with(first, clock))
    recorded = record_call([200])
    handlers.on_before_parameter_build(**recorded.kwargs("before-parameter-build"))
    handlers.on_before_call(**recorded.kwargs("before-call"))
    handlers.runtime = runtime_with(second, clock)
    handlers.on_after_call(**recorded.kwargs("after-call"))
    # The call is finished by the runtime in place when it ends.
    assert first.events == []
    assert second.of("call_finished") == [("s3", "HeadObject", "photos", "success", None)]
