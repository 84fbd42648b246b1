"""The breaker policy for partial outages and slow services, on a FakeClock.

Failure rate over a window (``failure_rate``, ``window``, ``minimum_calls``), slow calls
(``slow_call_duration``), open periods that double up to ``recovery_timeout_max`` with
jitter, ``force_open()``, and ``install(..., on_transition=...)``. No test sleeps; thread
tests wait on joins with generous timeouts.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from typing import Any, Callable, Optional

import pytest
from prometheus_client import CollectorRegistry

from botocore_resilience import ConfigurationError, Settings, Transition
from botocore_resilience.breaker import (
    FORCED,
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
    Outcome,
)
from botocore_resilience.handlers import EventHandlers, _Call
from botocore_resilience.runtime import build_runtime
from botocore_resilience.testing import FakeClock
from botocore_resilience.window import BUCKETS, RateWindow

CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN
SUCCESS, FAILURE, NOT_COUNTED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NOT_COUNTED
WAIT = 30.0  # seconds a thread may take before the test calls it stuck (a busy machine)


def no_jitter() -> float:
    return 0.0


class Recorder:
    def __init__(self) -> None:
        self.transitions: list[Transition] = []

    def __call__(self, transition: Transition) -> None:
        self.transitions.append(transition)

    def pairs(self) -> list[tuple[CircuitState, CircuitState]]:
        return [(t.from_state, t.to_state) for t in self.transitions]


def make(**policy: Any) -> tuple[CircuitBreaker, FakeClock, Recorder]:
    clock = FakeClock()
    recorder = Recorder()
    policy.setdefault("jitter", no_jitter)
    breaker = CircuitBreaker("s3/us-east-1", BreakerPolicy(**policy), clock, recorder)
    return breaker, clock, recorder


def call(breaker: CircuitBreaker, outcome: Outcome, cause: str = "503 SlowDown") -> bool:
    permit = breaker.acquire()
    if permit is None:
        return False
    breaker.record(permit, outcome, cause)
    return True


def rated(**policy: Any) -> tuple[CircuitBreaker, FakeClock, Recorder]:
    """A breaker whose consecutive trigger is out of reach: only the rate can open it."""
    options: dict[str, Any] = {
        "failure_threshold": 1000,
        "failure_rate": 50.0,
        "minimum_calls": 10,
        "window": 60.0,
    }
    options.update(policy)
    return make(**options)


# -- failure rate ------------------------------------------------------------------------------


def test_a_rate_below_the_threshold_never_opens() -> None:
    breaker, _clock, recorder = rated()
    for outcome in [FAILURE, SUCCESS, SUCCESS, FAILURE, SUCCESS] * 20:  # 40%, 100 calls
        assert call(breaker, outcome)
    assert breaker.state is CLOSED
    assert recorder.transitions == []
    assert breaker.window is not None
    assert breaker.window.totals(0.0) == (100, 40)


def test_a_rate_at_the_threshold_opens_and_says_why() -> None:
    breaker, _clock, recorder = rated(failure_rate=30)
    # 30% of ten calls, never two failures in a row: consecutive counting never would.
    for outcome in [FAILURE, SUCCESS, SUCCESS, SUCCESS, FAILURE, SUCCESS, SUCCESS, SUCCESS]:
        call(breaker, outcome)
    assert breaker.state is CLOSED
    call(breaker, SUCCESS)
    call(breaker, FAILURE, "500 InternalError")  # 3 of 10
    assert breaker.state is OPEN
    (opened,) = recorder.transitions
    assert opened.cause == "failure rate 30% of 10 calls in 60 s (last: 500 InternalError)"
    assert opened.open_for == pytest.approx(60.0)


def test_a_fractional_rate_is_compared_exactly() -> None:
    breaker, _clock, _recorder = rated(failure_rate=12.5, minimum_calls=8)
    for outcome in [FAILURE] + [SUCCESS] * 6:
        call(breaker, outcome)
    assert breaker.state is CLOSED  # 1 of 7 calls, but fewer than minimum_calls
    call(breaker, SUCCESS)  # 1 of 8 = 12.5%, reached by a success
    assert breaker.state is OPEN


def test_nothing_opens_before_minimum_calls_and_exactly_at_it_the_rate_does() -> None:
    breaker, _clock, recorder = rated(minimum_calls=10)
    for _ in range(9):
        call(breaker, FAILURE)
    assert breaker.state is CLOSED  # 100% of 9 calls: too few to judge
    call(breaker, FAILURE)
    assert breaker.state is OPEN
    assert recorder.transitions[0].cause.startswith("failure rate 100% of 10 calls")


def test_not_counted_calls_are_not_judged() -> None:
    breaker, _clock, _recorder = rated(minimum_calls=4)
    for outcome in [FAILURE, FAILURE, NOT_COUNTED, NOT_COUNTED, NOT_COUNTED]:
        call(breaker, outcome)
    assert breaker.state is CLOSED
    assert breaker.window is not None
    assert breaker.window.totals(0.0) == (2, 2)


def test_calls_older_than_the_window_no_longer_count() -> None:
    breaker, clock, _recorder = rated(minimum_calls=10)
    for _ in range(9):
        call(breaker, FAILURE)
    clock.advance(60)  # every one of them has left the window
    call(breaker, FAILURE)
    assert breaker.state is CLOSED
    assert breaker.window is not None
    assert breaker.window.totals(clock.monotonic()) == (1, 1)


def test_buckets_roll_over_one_tenth_of_the_window_at_a_time() -> None:
    breaker, clock, _recorder = rated(failure_rate=60, minimum_calls=10)
    for _ in range(6):
        call(breaker, FAILURE)  # at t=0, the first bucket
    clock.advance(59.9)  # the last bucket of the same window
    for _ in range(3):
        call(breaker, SUCCESS)
    assert breaker.state is CLOSED  # 9 calls
    call(breaker, SUCCESS)
    assert breaker.state is OPEN  # 6 of 10: the failures at t=0 still count at t=59.9

    breaker, clock, _recorder = rated(failure_rate=60, minimum_calls=10)
    for _ in range(6):
        call(breaker, FAILURE)
    clock.advance(60.0)  # the ring has come round: the first bucket is emptied
    for _ in range(4):
        call(breaker, SUCCESS)
    assert breaker.state is CLOSED


def test_the_window_forgets_in_tenths_and_keeps_everything_younger() -> None:
    window = RateWindow(10.0)
    for second in range(10):
        window.record(float(second), failed=second % 2 == 0)
    assert window.totals(9.99) == (10, 5)
    assert window.totals(10.0) == (9, 4)  # the bucket of t=0 has gone
    assert window.totals(14.5) == (5, 2)
    assert window.totals(1000.0) == (0, 0)  # a long gap empties each bucket once
    window.record(1000.0, failed=True)
    assert window.totals(1000.0) == (1, 1)


def test_a_clock_going_back_counts_the_call_in_the_newest_bucket() -> None:
    window = RateWindow(10.0)
    window.record(50.0, failed=True)
    assert window.record(20.0, failed=True) == (2, 2)  # not lost, not in an emptied bucket
    assert window.totals(59.99) == (2, 2)
    assert window.totals(60.0) == (0, 0)


def test_a_window_must_last() -> None:
    with pytest.raises(ValueError, match="> 0"):
        RateWindow(0.0)


def test_consecutive_failures_still_open_beside_the_rate() -> None:
    breaker, _clock, recorder = rated(failure_threshold=3, minimum_calls=100)
    for _ in range(3):
        call(breaker, FAILURE, "503 SlowDown")
    assert breaker.state is OPEN
    assert recorder.transitions[0].cause == "503 SlowDown"  # the consecutive trigger's cause
    assert recorder.transitions[0].consecutive_failures == 3


def test_closing_again_judges_the_rate_afresh() -> None:
    breaker, clock, _recorder = rated(minimum_calls=4, success_threshold=1, recovery_timeout=10)
    for _ in range(4):
        call(breaker, FAILURE)
    assert breaker.state is OPEN
    clock.advance(10)
    assert call(breaker, SUCCESS)  # the probe closes it
    assert breaker.state is CLOSED
    assert breaker.window is not None
    assert breaker.window.totals(clock.monotonic()) == (0, 0)
    for outcome in [SUCCESS, SUCCESS, FAILURE]:
        call(breaker, outcome)
    assert breaker.state is CLOSED  # the outage's failures, 10 s ago, are forgotten


def test_stale_permits_do_not_count_in_the_window() -> None:
    breaker, _clock, _recorder = rated(minimum_calls=2, recovery_timeout=10)
    before = breaker.acquire()
    call(breaker, FAILURE)
    call(breaker, FAILURE)
    assert breaker.state is OPEN
    breaker.reset()
    breaker.record(before, FAILURE, "late")  # admitted before two transitions
    assert breaker.window is not None
    assert breaker.window.totals(0.0) == (0, 0)


def test_without_a_failure_rate_record_is_the_consecutive_only_method() -> None:
    breaker, _clock, _recorder = make()
    assert breaker.window is None
    assert "record" not in vars(breaker)  # the class's method: nothing added to its path
    windowed, _clock, _recorder = rated()
    assert vars(windowed)["record"] == windowed._record_in_window


# -- growing open periods, jitter --------------------------------------------------------------


def test_each_failed_probe_doubles_the_open_period_up_to_the_cap() -> None:
    breaker, clock, recorder = make(
        failure_threshold=1, recovery_timeout=10, recovery_timeout_max=35
    )
    call(breaker, FAILURE)
    periods = []
    for _ in range(5):
        wait = breaker.retry_after()
        periods.append(wait)
        clock.advance(wait)
        assert call(breaker, FAILURE)  # the probe fails
    assert periods == [10.0, 20.0, 35.0, 35.0, 35.0]
    assert [t.open_for for t in recorder.transitions if t.to_state is OPEN][:4] == [
        10.0,
        20.0,
        35.0,
        35.0,
    ]


def test_closing_starts_the_open_periods_again_from_recovery_timeout() -> None:
    breaker, clock, _recorder = make(
        failure_threshold=1, recovery_timeout=10, recovery_timeout_max=100, success_threshold=1
    )
    call(breaker, FAILURE)
    clock.advance(10)
    call(breaker, FAILURE)
    assert breaker.retry_after() == 20.0
    clock.advance(20)
    call(breaker, SUCCESS)
    assert breaker.state is CLOSED
    call(breaker, FAILURE)
    assert breaker.retry_after() == 10.0


def test_without_recovery_timeout_max_the_period_does_not_grow() -> None:
    breaker, clock, _recorder = make(failure_threshold=1, recovery_timeout=10)
    call(breaker, FAILURE)
    for _ in range(3):
        assert breaker.retry_after() == 10.0
        clock.advance(10)
        call(breaker, FAILURE)


@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999, 1.0, -3.0, 7.0])
def test_jitter_adds_at_most_a_tenth(draw: float) -> None:
    policy = BreakerPolicy(recovery_timeout=10, recovery_timeout_max=40, jitter=lambda: draw)
    for reopenings, base in [(0, 10.0), (1, 20.0), (2, 40.0), (9, 40.0)]:
        period = policy.draw_open_period(reopenings)
        assert base <= period <= base * 1.1
    assert policy.draw_open_period(0) == pytest.approx(10.0 * (1 + 0.1 * min(max(draw, 0), 1)))


def test_jitter_is_drawn_afresh_for_each_opening_and_retry_after_is_the_real_time_left() -> None:
    draws = itertools.cycle([0.5, 0.0, 1.0])
    breaker, clock, recorder = make(
        failure_threshold=1,
        recovery_timeout=10,
        recovery_timeout_max=1000,
        jitter=lambda: next(draws),
    )
    call(breaker, FAILURE)
    assert breaker.retry_after() == pytest.approx(10.5)
    clock.advance(4)
    assert breaker.retry_after() == pytest.approx(6.5)  # what is left of 10.5
    assert breaker.admit() == pytest.approx(6.5)
    clock.advance(6.5)
    call(breaker, FAILURE)  # the probe fails: 20 s, drawn 0.0
    assert breaker.retry_after() == pytest.approx(20.0)
    clock.advance(20)
    call(breaker, FAILURE)  # 40 s, drawn 1.0
    assert breaker.retry_after() == pytest.approx(44.0)
    opened = [t.open_for for t in recorder.transitions if t.to_state is OPEN]
    assert opened == pytest.approx([10.5, 20.0, 44.0])


def test_the_default_jitter_spreads_open_periods_within_a_tenth() -> None:
    policy = BreakerPolicy(recovery_timeout=60)  # random.random
    periods = [policy.draw_open_period(0) for _ in range(200)]
    assert all(60.0 <= period <= 66.0 for period in periods)
    assert len(set(periods)) > 100  # independent processes do not probe in step


def test_a_huge_number_of_failed_probes_stays_at_the_cap() -> None:
    policy = BreakerPolicy(recovery_timeout=1, recovery_timeout_max=3600)
    assert policy.open_period(10_000) == 3600.0


# -- settings ----------------------------------------------------------------------------------


def test_recovery_timeout_max_below_recovery_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env(
            {
                "BOTOCORE_RESILIENCE_RECOVERY_TIMEOUT": "30",
                "BOTOCORE_RESILIENCE_RECOVERY_TIMEOUT_MAX": "10",
            }
        )
    message = str(raised.value)
    assert "BOTOCORE_RESILIENCE_RECOVERY_TIMEOUT_MAX" in message
    assert ">= recovery_timeout (30)" in message
    with pytest.raises(ConfigurationError, match="recovery_timeout_max"):
        Settings.from_env({}, recovery_timeout=30, recovery_timeout_max=29.5)
    assert Settings.from_env({}, recovery_timeout=30, recovery_timeout_max=30).max_open_period == 30
    assert Settings.from_env({}, recovery_timeout=30).max_open_period == 30


def test_the_settings_make_the_policy() -> None:
    runtime = build_runtime(
        {
            "BOTOCORE_RESILIENCE_FAILURE_RATE": "12.5",
            "BOTOCORE_RESILIENCE_WINDOW": "30",
            "BOTOCORE_RESILIENCE_MINIMUM_CALLS": "50",
            "BOTOCORE_RESILIENCE_RECOVERY_TIMEOUT_MAX": "600",
            "BOTOCORE_RESILIENCE_SLOW_CALL_DURATION": "2.5",
        },
        registry=CollectorRegistry(),
        clock=FakeClock(),
    )
    assert runtime.circuits is not None
    breaker = runtime.circuits.breaker_for("s3", "us-east-1", "GetObject", "")
    policy = breaker.policy
    assert (policy.failure_rate, policy.window, policy.minimum_calls) == (12.5, 30.0, 50)
    assert policy.max_open_period == 600.0
    assert runtime.settings.slow_call_duration == 2.5


# -- slow calls --------------------------------------------------------------------------------


def finish_call(
    runtime: Any, clock: FakeClock, seconds: float, outcome: Outcome, cause: str = ""
) -> CircuitBreaker:
    """One call through the handlers' finishing step that took ``seconds`` on ``clock``."""
    assert runtime.circuits is not None
    breaker: CircuitBreaker = runtime.circuits.breaker_for("s3", "us-east-1", "GetObject", "")
    permit = breaker.acquire()
    call = _Call("s3", "GetObject", "", None, breaker, permit, clock.monotonic())
    call.sent = True
    clock.advance(seconds)
    EventHandlers._finish(runtime, call, outcome, cause, "success")
    return breaker


def test_a_slow_success_is_a_failure_for_the_breaker_only() -> None:
    clock = FakeClock()
    recorder = Recorder()
    registry = CollectorRegistry()
    runtime = build_runtime(
        {},
        registry=registry,
        clock=clock,
        jitter=no_jitter,
        on_transition=recorder,
        failure_threshold=3,
        slow_call_duration=2.0,
    )
    breaker = finish_call(runtime, clock, 2.0, SUCCESS)  # exactly the limit: not slow
    assert breaker.consecutive_failures == 0
    for _ in range(3):
        finish_call(runtime, clock, 2.5, SUCCESS)
    assert breaker.state is OPEN
    (opened,) = recorder.transitions
    assert opened.cause == "slow call: 2.5 s > slow_call_duration 2 s"
    # What the callers saw is still counted as it was: four successes.
    assert (
        registry.get_sample_value(
            "botocore_operations_total",
            {"service": "s3", "operation": "GetObject", "bucket": "", "result": "success"},
        )
        == 4.0
    )


def test_a_slow_call_counts_toward_the_rate_too_and_keeps_its_error() -> None:
    clock = FakeClock()
    recorder = Recorder()
    runtime = build_runtime(
        {},
        registry=CollectorRegistry(),
        clock=clock,
        jitter=no_jitter,
        on_transition=recorder,
        failure_rate=50,
        minimum_calls=4,
        slow_call_duration=1.0,
    )
    finish_call(runtime, clock, 0.1, SUCCESS)
    finish_call(runtime, clock, 5.0, SUCCESS)
    finish_call(runtime, clock, 0.1, SUCCESS)
    breaker = finish_call(runtime, clock, 3.0, NOT_COUNTED, "ReadTimeoutError")
    assert breaker.state is OPEN
    (opened,) = recorder.transitions
    assert opened.cause == (
        "failure rate 50% of 4 calls in 60 s "
        "(last: slow call: 3 s > slow_call_duration 1 s; ReadTimeoutError)"
    )


def test_without_slow_call_duration_a_slow_call_is_judged_by_what_it_returned() -> None:
    clock = FakeClock()
    runtime = build_runtime({}, registry=CollectorRegistry(), clock=clock, failure_threshold=1)
    breaker = finish_call(runtime, clock, 3600.0, SUCCESS)
    assert breaker.state is CLOSED


# -- forced open -------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["closed", "open", "half_open"])
def test_force_open_rejects_everything_and_never_probes_until_reset(start: str) -> None:
    breaker, clock, recorder = make(
        failure_threshold=1, recovery_timeout=10, recovery_timeout_max=300
    )
    if start != "closed":
        call(breaker, FAILURE)
    if start == "half_open":
        clock.advance(10)
        assert breaker.acquire() is not None  # a probe in flight
        assert breaker.state is HALF_OPEN
    recorder.transitions.clear()

    breaker.force_open()

    assert breaker.state is OPEN
    assert breaker.forced
    (forced,) = recorder.transitions
    assert (forced.to_state, forced.cause, forced.open_for) == (OPEN, FORCED, math.inf)
    for _ in range(3):
        clock.advance(10_000)
        assert breaker.admit() == 300.0  # rejected; told the longest open period
        assert breaker.retry_after() == 300.0
    assert breaker.state is OPEN
    breaker.force_open()  # again: nothing changes, nothing is reported
    assert len(recorder.transitions) == 1

    breaker.reset()
    assert (breaker.state, breaker.forced) == (CLOSED, False)
    assert recorder.pairs()[-1] == (OPEN, CLOSED)
    assert call(breaker, SUCCESS)


def test_force_open_in_metrics_only_mode_lets_calls_through() -> None:
    breaker, _clock, _recorder = make(enforce=False)
    breaker.force_open()
    assert breaker.state is OPEN
    assert breaker.acquire() is not None  # computed, never enforced


def test_forced_open_shows_as_open_in_the_state_gauge() -> None:
    registry = CollectorRegistry()
    runtime = build_runtime({}, registry=registry, clock=FakeClock())
    assert runtime.circuits is not None
    breaker = runtime.circuits.breaker_for("s3", "us-east-1", "GetObject", "")
    breaker.force_open()
    labels = {"circuit_name": "s3/us-east-1"}
    assert registry.get_sample_value("botocore_circuit_breaker_state", labels) == 2.0
    assert (
        registry.get_sample_value(
            "botocore_circuit_breaker_transitions_total",
            {**labels, "from_state": "closed", "to_state": "open"},
        )
        == 1.0
    )


def test_forced_open_logs_that_an_operator_did_it(caplog: pytest.LogCaptureFixture) -> None:
    runtime = build_runtime({}, registry=CollectorRegistry(), clock=FakeClock())
    assert runtime.circuits is not None
    breaker = runtime.circuits.breaker_for("s3", "us-east-1", "GetObject", "")
    with caplog.at_level(logging.INFO, logger="botocore_resilience"):
        breaker.force_open()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "circuit s3/us-east-1 OPEN: forced by an operator; every call fails fast until it is reset"
    )


# -- the on_transition listener ----------------------------------------------------------------


def runtime_with_listener(
    listener: Callable[[Transition], None], registry: Optional[CollectorRegistry] = None
) -> tuple[Any, CircuitBreaker, FakeClock]:
    clock = FakeClock()
    runtime = build_runtime(
        {},
        registry=registry or CollectorRegistry(),
        clock=clock,
        jitter=no_jitter,
        on_transition=listener,
        failure_threshold=1,
        success_threshold=1,
        recovery_timeout=10,
    )
    assert runtime.circuits is not None
    return runtime, runtime.circuits.breaker_for("s3", "us-east-1", "GetObject", ""), clock


def test_the_listener_hears_every_transition_in_order_after_the_metrics() -> None:
    registry = CollectorRegistry()
    heard: list[tuple[CircuitState, CircuitState, int, Optional[float]]] = []

    def listener(transition: Transition) -> None:
        gauge = registry.get_sample_value(
            "botocore_circuit_breaker_state", {"circuit_name": transition.circuit_name}
        )
        heard.append((transition.from_state, transition.to_state, transition.seq, gauge))

    _runtime, breaker, clock = runtime_with_listener(listener, registry)
    call(breaker, FAILURE)
    clock.advance(10)
    call(breaker, SUCCESS)
    breaker.force_open()
    breaker.reset()
    assert heard == [
        (CLOSED, OPEN, 1, 2.0),  # the gauge already shows the new state
        (OPEN, HALF_OPEN, 2, 1.0),
        (HALF_OPEN, CLOSED, 3, 0.0),
        (CLOSED, OPEN, 4, 2.0),
        (OPEN, CLOSED, 5, 0.0),
    ]


def test_the_listener_is_called_outside_every_lock() -> None:
    seen: list[object] = []

    def listener(transition: Transition) -> None:
        # Under the breaker's (non-reentrant) lock this would never return.
        seen.append(breaker.backend.view().state)
        seen.append(breaker.acquire())

    _runtime, breaker, _clock = runtime_with_listener(listener)
    done = threading.Thread(target=call, args=(breaker, FAILURE), daemon=True)
    done.start()
    done.join(WAIT)
    assert not done.is_alive(), "the listener was called under a lock"
    assert seen == [OPEN, None]


def test_a_raising_listener_is_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Transition] = []

    def listener(transition: Transition) -> None:
        calls.append(transition)
        raise RuntimeError("the user's bug")

    _runtime, breaker, clock = runtime_with_listener(listener)
    with caplog.at_level(logging.INFO, logger="botocore_resilience"):
        call(breaker, FAILURE)
        clock.advance(10)
        call(breaker, SUCCESS)
    assert breaker.state is CLOSED  # the breaker went on
    assert len(calls) == 3  # heard every transition though it raised each time
    warnings = [r for r in caplog.records if "on_transition" in r.getMessage()]
    assert len(warnings) == 3
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in warnings)
    assert warnings[0].getMessage() == (
        "on_transition callback raised on closed -> open of circuit s3/us-east-1; ignored"
    )
    # The logging subscriber, before it, still told the transitions.
    assert any("OPEN after 1 consecutive" in r.getMessage() for r in caplog.records)


def test_installations_with_different_listeners_do_not_share_circuits() -> None:
    registry, clock = CollectorRegistry(), FakeClock()
    first, second = Recorder(), Recorder()
    one = build_runtime({}, registry=registry, clock=clock, on_transition=first)
    two = build_runtime({}, registry=registry, clock=clock, on_transition=second)
    same = build_runtime({}, registry=registry, clock=clock, on_transition=first)
    assert one.circuits is not two.circuits
    assert one.circuits is same.circuits


# -- races -------------------------------------------------------------------------------------


@pytest.fixture
def switch_often() -> Any:
    """Threads switch every microsecond: a read-modify-write left unlocked loses counts."""
    import sys

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_many_threads_recording_while_the_window_rolls_lose_no_call(switch_often: None) -> None:
    window = RateWindow(100.0)
    clock = FakeClock()
    threads, per_thread = 8, 4000
    start = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        start.wait(WAIT)
        for n in range(per_thread):
            window.record(clock.monotonic(), failed=(n + index) % 4 == 0)

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait(WAIT)
    # Through every bucket but never past the window: each call must still be counted.
    for _ in range(BUCKETS * 8):
        clock.advance(100.0 * 0.89 / (BUCKETS * 8))
    for worker in workers:
        worker.join(WAIT)
        assert not worker.is_alive()
    calls, failures = window.totals(clock.monotonic())
    assert (calls, failures) == (threads * per_thread, threads * per_thread // 4)


def test_the_totals_stay_the_sum_of_the_buckets_while_time_runs_past_the_window(
    switch_often: None,
) -> None:
    window = RateWindow(1.0)
    clock = FakeClock()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            window.record(clock.monotonic(), failed=True)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(6)]
    for worker in workers:
        worker.start()
    for _ in range(2000):
        clock.advance(0.037)  # rolls buckets, sometimes several at once
        calls, failures = window.totals(clock.monotonic())
        assert 0 <= failures == calls
    stop.set()
    for worker in workers:
        worker.join(WAIT)
    calls, failures = window.totals(clock.monotonic())
    assert calls == sum(window._calls) == failures == sum(window._failures)


def test_racing_failures_open_the_circuit_by_rate_exactly_once(switch_often: None) -> None:
    breaker, _clock, recorder = rated(minimum_calls=50)
    threads = 8
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait(WAIT)
        for n in range(200):
            permit = breaker.acquire()
            if permit is not None:
                breaker.record(permit, FAILURE if n % 2 else SUCCESS, "503")

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
        assert not worker.is_alive()
    assert recorder.pairs() == [(CLOSED, OPEN)]
