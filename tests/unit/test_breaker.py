"""The circuit breaker state machine, on a FakeClock: every transition, permits, leases, threads.

No test sleeps. Thread tests line threads up with barriers and events, and every wait has
a timeout so a lock held where it must not be shows up as a failure, not a hung run.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import pytest

from botocore_resilience.breaker import (
    DEFAULT_PROBE_LEASE,
    MIN_RETRY_AFTER,
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
    Outcome,
    Permit,
    Transition,
)
from botocore_resilience.local_state import LocalState
from botocore_resilience.testing import FakeClock

CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN
SUCCESS, FAILURE, NOT_COUNTED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.NOT_COUNTED
WAIT = 5.0  # seconds any cross-thread wait may take before the test calls it a deadlock


class Recorder:
    """An observer that keeps every transition."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []
        self._lock = threading.Lock()

    def __call__(self, transition: Transition) -> None:
        with self._lock:
            self.transitions.append(transition)

    def pairs(self) -> list[tuple[CircuitState, CircuitState]]:
        return [(t.from_state, t.to_state) for t in self.transitions]


def make(
    *,
    failure_threshold: int = 3,
    recovery_timeout: float = 60.0,
    success_threshold: int = 2,
    half_open_max_calls: int = 1,
    enforce: bool = True,
    probe_lease: Optional[float] = None,
    observer: Optional[Callable[[Transition], None]] = None,
    clock: Optional[FakeClock] = None,
) -> tuple[CircuitBreaker, FakeClock, Recorder]:
    clock = clock or FakeClock()
    recorder = Recorder()
    policy = BreakerPolicy(
        failure_threshold=failure_threshold,
        recovery_timeout=recovery_timeout,
        success_threshold=success_threshold,
        half_open_max_calls=half_open_max_calls,
        enforce=enforce,
        probe_lease=probe_lease,
        jitter=lambda: 0.0,  # exact open periods; the jitter: tests/unit/test_breaker_policy.py
    )
    breaker = CircuitBreaker("s3/us-east-1", policy, clock, observer or recorder)
    return breaker, clock, recorder


def call(breaker: CircuitBreaker, outcome: Outcome, cause: str = "") -> bool:
    """One whole call: acquire, then record ``outcome``. False if it was rejected."""
    permit = breaker.acquire()
    if permit is None:
        return False
    breaker.record(permit, outcome, cause)
    return True


def trip(breaker: CircuitBreaker, cause: str = "503 SlowDown") -> None:
    for _ in range(breaker.policy.failure_threshold):
        assert call(breaker, FAILURE, cause)
    assert breaker.state is OPEN


def half_open(breaker: CircuitBreaker, clock: FakeClock) -> Permit:
    """Trip the breaker, wait out the recovery timeout, and return the first probe."""
    trip(breaker)
    clock.advance(breaker.policy.recovery_timeout)
    probe = breaker.acquire()
    assert probe is not None
    assert probe.is_probe
    assert breaker.state is HALF_OPEN
    return probe


# -- closed ---------------------------------------------------------------------------------


def test_starts_closed() -> None:
    breaker, _clock, recorder = make()
    assert breaker.state is CLOSED
    assert breaker.name == "s3/us-east-1"
    assert breaker.consecutive_failures == 0
    assert breaker.retry_after() == 0.0
    permit = breaker.acquire()
    assert permit is not None
    assert not permit.is_probe
    assert recorder.transitions == []


def test_opens_after_failure_threshold_consecutive_failures() -> None:
    breaker, _clock, recorder = make(failure_threshold=3)
    for expected in (1, 2):
        call(breaker, FAILURE)
        assert breaker.state is CLOSED
        assert breaker.consecutive_failures == expected
    call(breaker, FAILURE, "503 SlowDown")
    assert breaker.state is OPEN
    assert recorder.pairs() == [(CLOSED, OPEN)]
    transition = recorder.transitions[0]
    assert transition.circuit_name == "s3/us-east-1"
    assert transition.consecutive_failures == 3
    assert transition.cause == "503 SlowDown"


def test_failure_threshold_one_opens_on_the_first_failure() -> None:
    breaker, _clock, _recorder = make(failure_threshold=1)
    call(breaker, FAILURE)
    assert breaker.state is OPEN


def test_a_success_resets_the_consecutive_count() -> None:
    breaker, _clock, _recorder = make(failure_threshold=3)
    for _ in range(5):
        call(breaker, FAILURE)
        call(breaker, FAILURE)
        call(breaker, SUCCESS)
        assert breaker.consecutive_failures == 0
        assert breaker.state is CLOSED


def test_not_counted_neither_counts_nor_resets_when_closed() -> None:
    breaker, _clock, _recorder = make(failure_threshold=3)
    call(breaker, FAILURE)
    call(breaker, FAILURE)
    for _ in range(10):
        call(breaker, NOT_COUNTED)
    assert breaker.consecutive_failures == 2
    assert breaker.state is CLOSED
    call(breaker, FAILURE)
    assert breaker.state is OPEN


def test_record_with_no_permit_is_ignored() -> None:
    breaker, _clock, _recorder = make(failure_threshold=1)
    breaker.record(None, FAILURE)
    assert breaker.state is CLOSED


# -- open -----------------------------------------------------------------------------------


def test_open_rejects_and_retry_after_counts_down() -> None:
    breaker, clock, _recorder = make(recovery_timeout=60)
    trip(breaker)
    assert breaker.acquire() is None
    assert breaker.retry_after() == pytest.approx(60.0)
    clock.advance(15)
    assert breaker.acquire() is None
    assert breaker.retry_after() == pytest.approx(45.0)
    clock.advance(44.5)
    assert breaker.acquire() is None
    assert breaker.retry_after() == pytest.approx(0.5)
    assert breaker.state is OPEN


def test_retry_after_is_never_negative() -> None:
    breaker, clock, _recorder = make(recovery_timeout=10)
    trip(breaker)
    clock.advance(1000)
    assert breaker.state is OPEN  # reading changes nothing
    assert breaker.retry_after() == 0.0


def test_reading_the_state_does_not_move_it() -> None:
    breaker, clock, recorder = make(recovery_timeout=10)
    trip(breaker)
    clock.advance(11)
    for _ in range(3):
        assert breaker.state is OPEN
    assert recorder.pairs() == [(CLOSED, OPEN)]


def test_outcomes_of_calls_started_before_opening_are_ignored() -> None:
    breaker, _clock, recorder = make(failure_threshold=2)
    stale = [breaker.acquire() for _ in range(5)]
    trip(breaker)
    for permit in stale:
        breaker.record(permit, FAILURE)
        breaker.record(permit, SUCCESS)
    assert breaker.state is OPEN
    assert breaker.consecutive_failures == 2
    assert recorder.pairs() == [(CLOSED, OPEN)]


# -- half-open ------------------------------------------------------------------------------


def test_open_turns_half_open_on_the_first_call_after_the_recovery_timeout() -> None:
    breaker, clock, recorder = make(recovery_timeout=30)
    trip(breaker)
    clock.advance(29.999)
    assert breaker.acquire() is None
    clock.advance(0.001)
    probe = breaker.acquire()
    assert probe is not None
    assert probe.is_probe
    assert breaker.state is HALF_OPEN
    assert breaker.retry_after() == MIN_RETRY_AFTER  # its one slot is taken, just now
    assert recorder.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_admits_exactly_half_open_max_calls(max_calls: int) -> None:
    breaker, clock, _recorder = make(half_open_max_calls=max_calls, success_threshold=10)
    first = half_open(breaker, clock)
    probes = [first] + [breaker.acquire() for _ in range(max_calls - 1)]
    assert all(p is not None and p.is_probe for p in probes)
    assert len({p.probe_id for p in probes if p is not None}) == max_calls
    for _ in range(5):
        assert breaker.acquire() is None
    # A finished probe frees its slot for exactly one more.
    breaker.record(probes[0], SUCCESS)
    assert breaker.acquire() is not None
    assert breaker.acquire() is None
    assert breaker.state is HALF_OPEN


@pytest.mark.parametrize("success_threshold", [1, 2, 3])
def test_success_threshold_good_probes_close_it(success_threshold: int) -> None:
    breaker, clock, recorder = make(success_threshold=success_threshold)
    probe: Optional[Permit] = half_open(breaker, clock)
    for good in range(1, success_threshold + 1):
        assert probe is not None
        breaker.record(probe, SUCCESS)
        if good < success_threshold:
            assert breaker.state is HALF_OPEN
            probe = breaker.acquire()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert recorder.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert recorder.transitions[-1].cause  # says why, in words
    # Closed again: the count starts from zero.
    for _ in range(breaker.policy.failure_threshold - 1):
        call(breaker, FAILURE)
    assert breaker.state is CLOSED


def test_a_failed_probe_reopens_and_restarts_retry_after() -> None:
    breaker, clock, recorder = make(recovery_timeout=60, success_threshold=3)
    probe = half_open(breaker, clock)
    breaker.record(probe, SUCCESS)  # one good probe is not enough...
    second = breaker.acquire()
    assert second is not None
    clock.advance(7)
    breaker.record(second, FAILURE, "ReadTimeoutError")  # ...and any failed probe reopens
    assert breaker.state is OPEN
    assert breaker.retry_after() == pytest.approx(60.0)  # restarted, not 60 - 7
    assert breaker.acquire() is None
    assert recorder.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    assert recorder.transitions[-1].cause == "ReadTimeoutError"
    # and the earlier good probe is forgotten: it takes success_threshold new ones to close.
    clock.advance(60)
    for _ in range(2):
        call(breaker, SUCCESS)
    assert breaker.state is HALF_OPEN
    call(breaker, SUCCESS)
    assert breaker.state is CLOSED


def test_not_counted_frees_a_probe_slot_without_counting() -> None:
    breaker, clock, recorder = make(success_threshold=1)
    probe = half_open(breaker, clock)
    assert breaker.acquire() is None  # slot taken
    breaker.record(probe, NOT_COUNTED)
    assert breaker.state is HALF_OPEN  # neither closed nor reopened
    assert len(recorder.transitions) == 2
    next_probe = breaker.acquire()
    assert next_probe is not None  # the slot is free again
    breaker.record(next_probe, SUCCESS)
    assert breaker.state is CLOSED


def test_a_probe_outcome_counts_once() -> None:
    breaker, clock, _recorder = make(success_threshold=2)
    probe = half_open(breaker, clock)
    breaker.record(probe, SUCCESS)
    breaker.record(probe, SUCCESS)  # the same permit again: its slot is already gone
    assert breaker.state is HALF_OPEN


def test_stale_permits_from_before_a_transition_are_ignored() -> None:
    breaker, clock, recorder = make(failure_threshold=2, success_threshold=1)
    closed_permit = breaker.acquire()
    probe = half_open(breaker, clock)
    # A call that started while closed cannot close (or reopen) the half-open circuit.
    breaker.record(closed_permit, SUCCESS)
    assert breaker.state is HALF_OPEN
    breaker.record(closed_permit, FAILURE)
    assert breaker.state is HALF_OPEN
    # A probe of an earlier half-open period cannot touch a later one.
    breaker.record(probe, FAILURE)
    assert breaker.state is OPEN
    clock.advance(60)
    new_probe = breaker.acquire()
    assert new_probe is not None
    breaker.record(probe, SUCCESS)
    breaker.record(probe, FAILURE)
    assert breaker.state is HALF_OPEN
    # ... nor can it touch the closed circuit after that.
    breaker.record(new_probe, SUCCESS)
    assert breaker.state is CLOSED
    breaker.record(probe, FAILURE)
    breaker.record(closed_permit, FAILURE)
    breaker.record(new_probe, FAILURE)
    breaker.record(closed_permit, FAILURE)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert len(recorder.transitions) == 5


# -- slots, guards and leases -------------------------------------------------------------


def test_a_slow_probe_keeps_its_slot_and_its_success_counts() -> None:
    """A healthy service slower than recovery_timeout still closes the circuit."""
    breaker, clock, recorder = make(recovery_timeout=0.3, success_threshold=2)
    slow = half_open(breaker, clock)
    for _ in range(30):  # 0.8 s answers: the probe outlives many recovery timeouts
        clock.advance(0.8)
        assert breaker.acquire() is None  # no second probe while the first is alive
    breaker.record(slow, SUCCESS)  # the late success counts
    assert breaker.state is HALF_OPEN
    next_probe = breaker.acquire()
    assert next_probe is not None
    clock.advance(0.8)
    breaker.record(next_probe, SUCCESS)
    assert breaker.state is CLOSED
    assert recorder.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


def test_the_default_lease_does_not_come_from_the_recovery_timeout() -> None:
    assert BreakerPolicy(recovery_timeout=0.3).lease == DEFAULT_PROBE_LEASE
    assert BreakerPolicy(recovery_timeout=3600).lease == DEFAULT_PROBE_LEASE


def test_a_lost_probe_frees_its_slot_after_its_lease() -> None:
    breaker, clock, _recorder = make(recovery_timeout=60)
    lost = half_open(breaker, clock)
    breaker.set_lease(lost, 300)
    clock.advance(299.9)
    assert breaker.acquire() is None  # still leased
    clock.advance(0.1)
    replacement = breaker.acquire()
    assert replacement is not None
    assert replacement.is_probe
    assert replacement.probe_id != lost.probe_id
    assert breaker.acquire() is None  # the slot now belongs to the replacement


def test_a_probe_heard_after_its_lease_still_counts_in_its_period() -> None:
    breaker, clock, _recorder = make(success_threshold=2, half_open_max_calls=1)
    late = half_open(breaker, clock)
    breaker.set_lease(late, 10)
    clock.advance(10)
    replacement = breaker.acquire()
    assert replacement is not None
    breaker.record(late, SUCCESS)  # the call did end: the service answered
    breaker.record(late, SUCCESS)  # once only
    assert breaker.state is HALF_OPEN
    assert breaker.acquire() is None  # the replacement still holds the slot
    breaker.record(replacement, SUCCESS)
    assert breaker.state is CLOSED


def test_probe_lease_of_the_policy_applies_until_the_caller_sets_one() -> None:
    breaker, clock, _recorder = make(recovery_timeout=60, probe_lease=5)
    assert breaker.policy.lease == 5
    half_open(breaker, clock)
    clock.advance(4.9)
    assert breaker.acquire() is None
    clock.advance(0.1)
    assert breaker.acquire() is not None


def test_set_lease_counts_from_admission_and_ignores_other_permits() -> None:
    breaker, clock, _recorder = make()
    closed = breaker.acquire()
    assert closed is not None
    breaker.set_lease(closed, 1)  # an ordinary permit has no slot: nothing happens
    probe = half_open(breaker, clock)
    clock.advance(20)
    breaker.set_lease(probe, 30)  # 30 s from admission, 10 s from now
    clock.advance(9.9)
    assert breaker.acquire() is None
    clock.advance(0.1)
    assert breaker.acquire() is not None
    breaker.set_lease(probe, 1000)  # its slot is gone: nothing to extend
    assert breaker.acquire() is None


def test_no_sequence_of_lost_probes_wedges_the_circuit() -> None:
    breaker, clock, _recorder = make(half_open_max_calls=3, success_threshold=1)
    half_open(breaker, clock)
    for _ in range(2):
        assert breaker.acquire() is not None
    assert breaker.acquire() is None
    for _ in range(10):  # every probe lost, over and over
        clock.advance(breaker.policy.lease)
        assert [breaker.acquire() is not None for _ in range(4)] == [True, True, True, False]
    clock.advance(breaker.policy.lease)
    assert call(breaker, SUCCESS)
    assert breaker.state is CLOSED


@pytest.mark.parametrize("max_calls", [1, 3])
def test_probes_of_a_failed_period_hold_their_slots_in_the_next(max_calls: int) -> None:
    """Never more than half_open_max_calls probes in flight, across half-open periods."""
    breaker, clock, _recorder = make(half_open_max_calls=max_calls, success_threshold=5)
    first = half_open(breaker, clock)
    others = [breaker.acquire() for _ in range(max_calls - 1)]
    assert all(p is not None for p in others)
    breaker.record(first, FAILURE)  # the period fails; the other probes are still running
    assert breaker.state is OPEN
    clock.advance(60)
    fresh = [breaker.acquire() for _ in range(max_calls)]
    assert sum(p is not None for p in fresh) == 1  # only the failed probe's slot is free
    assert breaker.probes_in_flight == max_calls
    for old in others:  # the old probes end: their outcomes are stale, their slots free
        breaker.record(old, SUCCESS)
    assert breaker.state is HALF_OPEN
    assert sum(breaker.acquire() is not None for _ in range(max_calls)) == max_calls - 1


def test_a_dropped_guard_frees_the_slot_of_a_probe_that_ended_unheard() -> None:
    breaker, clock, recorder = make(success_threshold=1)
    probe = half_open(breaker, clock)
    guard = breaker.probe_guard(probe)
    assert breaker.acquire() is None
    del guard  # the call's context is gone: it ended without an outcome
    assert breaker.probes_in_flight == 0
    assert breaker.state is HALF_OPEN  # nothing was learnt
    breaker.record(probe, FAILURE)  # a late word from a probe given up on changes nothing
    assert breaker.state is HALF_OPEN
    assert call(breaker, SUCCESS)
    assert breaker.state is CLOSED
    assert len(recorder.transitions) == 3


def test_a_guard_of_a_recorded_probe_frees_nothing_more() -> None:
    breaker, clock, _recorder = make(half_open_max_calls=1, success_threshold=3)
    probe = half_open(breaker, clock)
    guard = breaker.probe_guard(probe)
    breaker.record(probe, SUCCESS)
    second = breaker.acquire()
    assert second is not None
    del guard
    assert breaker.acquire() is None  # the second probe's slot is untouched
    assert breaker.probes_in_flight == 1


def test_a_guard_collected_while_the_lock_is_held_frees_the_slot_later() -> None:
    """A finaliser may run in a thread that holds the breaker's lock (garbage collection
    can start anywhere): it must neither deadlock nor lose the release."""
    breaker, clock, _recorder = make()
    probe = half_open(breaker, clock)
    guard = breaker.probe_guard(probe)
    with breaker.backend._lock:  # type: ignore[attr-defined]
        del guard  # would deadlock if the finaliser waited for the lock
    assert breaker.acquire() is not None


# -- retry_after ----------------------------------------------------------------------------


def test_every_rejection_says_when_to_come_back() -> None:
    breaker, clock, _recorder = make(recovery_timeout=60, half_open_max_calls=2)
    trip(breaker)
    assert breaker.admit() == pytest.approx(60.0)
    clock.advance(59.99999999)
    wait = breaker.admit()
    assert isinstance(wait, float)
    assert wait > 0
    clock.advance(1)
    probes = [breaker.admit(), breaker.admit()]
    assert all(isinstance(p, Permit) for p in probes)
    # Half-open and full: at least MIN_RETRY_AFTER, then as long as the oldest probe has run.
    assert breaker.admit() == MIN_RETRY_AFTER
    clock.advance(3)
    assert breaker.admit() == pytest.approx(3.0)
    assert breaker.retry_after() == pytest.approx(3.0)
    # A slot frees: a call may go now.
    first = probes[0]
    assert isinstance(first, Permit)
    breaker.record(first, NOT_COUNTED)
    assert breaker.retry_after() == 0.0


def test_a_half_open_estimate_never_passes_the_lease() -> None:
    breaker, clock, _recorder = make()
    probe = half_open(breaker, clock)
    breaker.set_lease(probe, 100)
    clock.advance(80)
    assert breaker.admit() == pytest.approx(20.0)  # freed by its lease by then, at the latest
    clock.advance(19.99)
    assert breaker.admit() == MIN_RETRY_AFTER


class SettableClock:
    """A clock a test sets to any time, backwards included (a broken injected clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_clock_going_back_never_stretches_an_open_period_or_a_lease() -> None:
    clock = SettableClock()
    policy = BreakerPolicy(
        failure_threshold=1, recovery_timeout=60, probe_lease=100, jitter=lambda: 0.0
    )
    breaker = CircuitBreaker("s3/us-east-1", policy, clock)
    breaker.record(breaker.acquire(), FAILURE)
    clock.now = 10.0  # 990 s back
    assert breaker.retry_after() <= 60
    wait = breaker.admit()
    assert isinstance(wait, float)
    assert 0 < wait <= 60
    clock.now = 70.0
    probe = breaker.acquire()
    assert probe is not None
    clock.now = 0.0  # back again, while the probe is out
    assert 0 < breaker.retry_after() <= 100
    clock.now = 100.0
    assert breaker.acquire() is not None  # freed 100 s after the clock went back


# -- reset ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["open", "half_open"])
def test_reset_closes_the_circuit(where: str) -> None:
    breaker, clock, recorder = make()
    if where == "open":
        trip(breaker)
    else:
        half_open(breaker, clock)
    breaker.reset()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert breaker.retry_after() == 0.0
    assert breaker.acquire() is not None
    last = recorder.transitions[-1]
    assert (last.to_state, last.cause) == (CLOSED, "reset")


def test_reset_when_closed_forgets_failures_without_a_transition() -> None:
    breaker, _clock, recorder = make(failure_threshold=3)
    call(breaker, FAILURE)
    call(breaker, FAILURE)
    breaker.reset()
    assert breaker.consecutive_failures == 0
    assert recorder.transitions == []
    call(breaker, FAILURE)
    call(breaker, FAILURE)
    assert breaker.state is CLOSED


def test_reset_makes_in_flight_permits_stale() -> None:
    breaker, clock, _recorder = make(success_threshold=1)
    probe = half_open(breaker, clock)
    breaker.reset()
    breaker.record(probe, FAILURE)
    assert breaker.state is CLOSED


# -- observer -------------------------------------------------------------------------------


def test_observer_sees_every_transition_with_increasing_seq() -> None:
    breaker, clock, recorder = make(failure_threshold=2, success_threshold=1)
    probe = half_open(breaker, clock)  # closed -> open -> half-open
    breaker.record(probe, FAILURE, "ConnectTimeoutError")  # -> open
    clock.advance(60)
    call(breaker, SUCCESS)  # -> half-open -> closed
    trip(breaker)  # -> open
    breaker.reset()  # -> closed
    assert recorder.pairs() == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
        (CLOSED, OPEN),
        (OPEN, CLOSED),
    ]
    seqs = [t.seq for t in recorder.transitions]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert all(t.circuit_name == "s3/us-east-1" for t in recorder.transitions)
    assert [t.consecutive_failures for t in recorder.transitions][:3] == [2, 2, 3]
    assert recorder.transitions[2].cause == "ConnectTimeoutError"
    assert all(t.cause for t in recorder.transitions)


def test_transition_records_are_immutable() -> None:
    breaker, _clock, recorder = make(failure_threshold=1)
    call(breaker, FAILURE)
    with pytest.raises(AttributeError):
        recorder.transitions[0].seq = 99  # type: ignore[misc]


def test_gauge_values() -> None:
    assert [s.gauge_value for s in (CLOSED, HALF_OPEN, OPEN)] == [0, 1, 2]
    assert [s.value for s in (CLOSED, HALF_OPEN, OPEN)] == ["closed", "half_open", "open"]


def test_works_without_an_observer() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("x", BreakerPolicy(failure_threshold=1), clock)
    call(breaker, FAILURE)
    assert breaker.state is OPEN
    assert "open" in repr(breaker)


# -- metrics-only ---------------------------------------------------------------------------


def test_metrics_only_never_rejects_but_computes_state() -> None:
    breaker, _clock, recorder = make(enforce=False, failure_threshold=2, success_threshold=1)
    trip(breaker)
    for _ in range(5):
        permit = breaker.acquire()
        assert permit is not None  # would be rejected: goes ahead anyway
        breaker.record(permit, SUCCESS)  # and its outcome changes nothing
    assert breaker.state is OPEN
    assert breaker.retry_after() == pytest.approx(60.0)
    assert recorder.pairs() == [(CLOSED, OPEN)]


def test_metrics_only_would_be_rejected_calls_do_not_affect_half_open() -> None:
    breaker, clock, recorder = make(enforce=False, success_threshold=1, half_open_max_calls=1)
    probe = half_open(breaker, clock)
    extras = [breaker.acquire() for _ in range(5)]
    assert all(extra is not None for extra in extras)
    assert all(extra is not None and not extra.is_probe for extra in extras)
    for extra in extras:
        breaker.record(extra, SUCCESS)  # would close it (success_threshold=1) if counted
        breaker.record(extra, FAILURE)  # would reopen it if counted
    assert breaker.state is HALF_OPEN
    breaker.record(probe, SUCCESS)  # the real probe still decides
    assert breaker.state is CLOSED
    assert recorder.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


# -- threads --------------------------------------------------------------------------------


def run_threads(count: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def wrapped(index: int) -> None:
        try:
            target(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=wrapped, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    assert errors == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("max_calls", [1, 3])
@pytest.mark.parametrize("repeat", range(5))
def test_racing_threads_get_exactly_half_open_max_calls_permits(
    max_calls: int, repeat: int
) -> None:
    breaker, clock, recorder = make(half_open_max_calls=max_calls)
    trip(breaker)
    clock.advance(60)  # the first acquire() will turn it half-open
    barrier = threading.Barrier(32, timeout=WAIT)
    permits: list[Optional[Permit]] = [None] * 32

    def racer(index: int) -> None:
        barrier.wait()
        permits[index] = breaker.acquire()

    run_threads(32, racer)
    granted = [p for p in permits if p is not None]
    assert len(granted) == max_calls
    assert all(p.is_probe for p in granted)
    assert len({p.probe_id for p in granted}) == max_calls
    assert recorder.pairs() == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]  # turned half-open once


@pytest.mark.timeout(30)
@pytest.mark.parametrize("repeat", range(5))
def test_concurrent_failures_open_the_circuit_exactly_once(repeat: int) -> None:
    breaker, _clock, recorder = make(failure_threshold=5)
    barrier = threading.Barrier(32, timeout=WAIT)

    def failer(_index: int) -> None:
        permit = breaker.acquire()  # all acquired while closed
        barrier.wait()
        for _ in range(20):
            breaker.record(permit, FAILURE)

    run_threads(32, failer)
    assert breaker.state is OPEN
    assert recorder.pairs() == [(CLOSED, OPEN)]
    assert recorder.transitions[0].consecutive_failures == 5


@pytest.mark.timeout(30)
def test_concurrent_probe_outcomes_close_it_exactly_once() -> None:
    breaker, clock, recorder = make(half_open_max_calls=32, success_threshold=4)
    probes = [half_open(breaker, clock)] + [breaker.acquire() for _ in range(31)]
    assert all(p is not None for p in probes)
    barrier = threading.Barrier(32, timeout=WAIT)

    def prober(index: int) -> None:
        barrier.wait()
        breaker.record(probes[index], SUCCESS)

    run_threads(32, prober)
    assert breaker.state is CLOSED
    assert recorder.pairs().count((HALF_OPEN, CLOSED)) == 1


@pytest.mark.timeout(30)
def test_the_lock_is_not_held_during_the_call() -> None:
    """One thread is "in a call" (between acquire and record) and stays there until told;
    meanwhile every other thread uses the breaker freely. If the lock were held across
    the call, the other threads' work would never finish."""
    breaker, clock, _recorder = make(failure_threshold=3, half_open_max_calls=1)
    in_call = threading.Event()
    finish_call = threading.Event()

    def slow_call() -> None:
        permit = breaker.acquire()
        in_call.set()
        assert finish_call.wait(WAIT)
        breaker.record(permit, SUCCESS)

    slow = threading.Thread(target=slow_call, daemon=True)
    slow.start()
    assert in_call.wait(WAIT)

    others_done = threading.Event()

    def others() -> None:
        for _ in range(3):
            call(breaker, FAILURE)
        assert breaker.state is OPEN
        assert breaker.acquire() is None
        assert breaker.retry_after() > 0
        clock.advance(60)
        probe = breaker.acquire()  # the same holds for a probe "in a call"
        assert probe is not None
        assert breaker.acquire() is None
        breaker.reset()
        others_done.set()

    other = threading.Thread(target=others, daemon=True)
    other.start()
    assert others_done.wait(WAIT), "another thread blocked while one call was in flight"
    finish_call.set()
    slow.join(WAIT)
    other.join(WAIT)
    assert not slow.is_alive()
    assert breaker.state is CLOSED


@pytest.mark.timeout(30)
def test_the_observer_is_called_outside_the_lock() -> None:
    """The observer may use the very breaker that notified it (a log handler making an AWS
    call through the circuit). With a non-reentrant lock held, this would deadlock."""
    seen: list[tuple[CircuitState, Optional[Permit], float]] = []
    holder: list[CircuitBreaker] = []

    def observer(transition: Transition) -> None:
        breaker = holder[0]
        seen.append((breaker.state, breaker.acquire(), breaker.retry_after()))

    breaker, clock, _recorder = make(failure_threshold=1, observer=observer)
    holder.append(breaker)
    done = threading.Event()

    def work() -> None:
        call(breaker, FAILURE)
        clock.advance(60)
        breaker.acquire()
        done.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    assert done.wait(WAIT), "the observer was called with the breaker's lock held"
    assert seen[0][0] is OPEN
    assert seen[0][1] is None


@pytest.mark.timeout(30)
def test_a_blocked_observer_does_not_block_other_threads() -> None:
    entered = threading.Event()
    release = threading.Event()

    def observer(transition: Transition) -> None:
        if transition.to_state is OPEN and not entered.is_set():
            entered.set()
            assert release.wait(WAIT)

    breaker, _clock, _recorder = make(failure_threshold=1, observer=observer)
    opener = threading.Thread(target=call, args=(breaker, FAILURE), daemon=True)
    opener.start()
    assert entered.wait(WAIT)

    results: list[object] = []

    def reader() -> None:
        results.append(breaker.acquire())
        results.append(breaker.retry_after())
        breaker.record(Permit(0), FAILURE)  # a stale permit, under the lock

    other = threading.Thread(target=reader, daemon=True)
    other.start()
    other.join(WAIT)
    blocked = other.is_alive()
    release.set()
    opener.join(WAIT)
    assert not blocked, "the breaker's lock was held while the observer ran"
    assert results[0] is None


# -- the state seam -------------------------------------------------------------------------


class CountingState(LocalState):
    """The in-process state, counting the operations the policy asks of it."""

    def __init__(self, *args: Any) -> None:
        self.calls: list[str] = []
        super().__init__(*args)

    def __getattribute__(self, name: str) -> Any:
        if name in OPERATIONS:
            object.__getattribute__(self, "calls").append(name)
        return object.__getattribute__(self, name)


OPERATIONS = {
    "view",
    "wait",
    "probes_in_flight",
    "admit",
    "set_lease",
    "release_soon",
    "finish_probe",
    "add_failure",
    "clear_failures",
    "move",
}


def counted(**policy: Any) -> tuple[CircuitBreaker, CountingState, FakeClock]:
    clock = FakeClock()
    policy.setdefault("jitter", lambda: 0.0)
    breaker = CircuitBreaker("s3/us-east-1", BreakerPolicy(**policy), clock, None, CountingState)
    backend = breaker.backend
    assert isinstance(backend, CountingState)
    return breaker, backend, clock


def test_a_healthy_closed_circuit_never_asks_where_its_state_lives() -> None:
    """The hot path stays local: with the state in a store, no round trip."""
    breaker, backend, _clock = counted()
    for _ in range(100):
        assert call(breaker, SUCCESS)
    assert backend.calls == []
    call(breaker, FAILURE)  # a failure is counted where the state lives...
    call(breaker, SUCCESS)  # ...and so is the success that clears it
    call(breaker, SUCCESS)  # then nothing again
    assert backend.calls == ["add_failure", "clear_failures"]


def test_each_decision_is_one_operation_and_a_transition_one_more() -> None:
    breaker, backend, clock = counted(failure_threshold=2, success_threshold=1)
    call(breaker, FAILURE)
    assert backend.calls == ["add_failure"]
    backend.calls.clear()
    call(breaker, FAILURE)
    assert backend.calls == ["add_failure", "move"]
    backend.calls.clear()
    assert breaker.admit() == pytest.approx(60.0)
    clock.advance(60)
    probe = breaker.acquire()
    assert probe is not None
    breaker.record(probe, SUCCESS)
    assert backend.calls == ["admit", "admit", "finish_probe", "move"]
    assert breaker.state is CLOSED


def test_transitions_are_compare_and_set_on_seq() -> None:
    breaker, _clock, recorder = make(failure_threshold=1)
    seq = breaker.backend.view().seq
    assert breaker.backend.move(seq, OPEN, "first", 60.0) is not None
    assert breaker.backend.move(seq, OPEN, "second", 60.0) is None  # seq is no longer current
    assert breaker.backend.add_failure(seq) is None
    assert recorder.pairs() == [(CLOSED, OPEN)]
    assert breaker.state is OPEN  # the breaker mirrors what the backend holds


def test_the_open_period_is_the_policys_choice() -> None:
    class Doubling(BreakerPolicy):
        def open_period(self, reopenings: int) -> float:
            return self.recovery_timeout * 2**reopenings

    clock = FakeClock()
    policy = Doubling(failure_threshold=1, jitter=lambda: 0.0)
    breaker = CircuitBreaker("s3/us-east-1", policy, clock)
    call(breaker, FAILURE)
    for period in (60.0, 120.0, 240.0):
        assert breaker.admit() == pytest.approx(period)
        clock.advance(period)
        probe = breaker.acquire()
        assert probe is not None
        breaker.record(probe, FAILURE)  # one more failed half-open period
    assert breaker.backend.view().reopenings == 3
