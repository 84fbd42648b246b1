"""The breaker with its state in the store (``CircuitBreaker(..., backend=)`` on
:class:`~botocore_resilience.store.backend.SharedState`) on a real ``redis-server``; two
stores stand for two processes. The policy is the in-process breaker's own: the hot path
makes no round trip, the failure rate and growing open periods work fleet-wide, overrides
act on the fleet, and a store that fails leaves a local state serving. (The claims about
separate processes are in test_fleet.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from botocore_resilience.breaker import (
    FORCED,
    BreakerPolicy,
    CircuitBreaker,
    CircuitState,
    Outcome,
    Transition,
)
from botocore_resilience.local_state import LocalState
from botocore_resilience.state import Mirror, begin_call, end_call, waited
from botocore_resilience.store import StateStore, open_store, parse_state_url
from botocore_resilience.store.backend import STORE_DOWN_CAUSE, SharedState
from botocore_resilience.store.keys import state_key
from botocore_resilience.testing import FakeClock

from .redis_servers import RedisServer
from .waits import wait_until

NAME = "s3/us-east-1"
OPEN = CircuitState.OPEN
DEADLINE = 30.0


def _evals(server: RedisServer) -> int:
    for line in server.cli("info", "commandstats").splitlines():
        if line.startswith("cmdstat_eval:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def on_store(
    store: Any,
    clock: Optional[FakeClock] = None,
    observer: Optional[Callable[[Transition], None]] = None,
    **policy: Any,
) -> CircuitBreaker:
    """A breaker whose state lives in ``store``: the in-process policy, another backend."""
    policy.setdefault("jitter", lambda: 0.0)

    def backend(name: str, clock: Any, mirror: Mirror) -> SharedState:
        return SharedState(name, clock, mirror, store)

    return CircuitBreaker(
        NAME, BreakerPolicy(**policy), clock or FakeClock(), observer, backend=backend
    )


@pytest.fixture
def breakers(redis_server: RedisServer) -> Iterator[Callable[..., CircuitBreaker]]:
    stores: list[Any] = []

    def make(**policy: Any) -> CircuitBreaker:
        store = open_store(parse_state_url(redis_server.url), 2.0)
        stores.append(store)
        return on_store(store, **policy)

    yield make
    for store in stores:
        store.close()


def test_a_healthy_call_makes_no_store_round_trip(
    breakers: Callable[..., CircuitBreaker], redis_server: RedisServer
) -> None:
    breaker = breakers()
    breaker.record(breaker.acquire(), Outcome.SUCCESS)  # first use: reads the fleet state
    wait_until(lambda: _evals(redis_server) >= 1, "the first read")
    before = _evals(redis_server)
    for _ in range(500):
        breaker.record(breaker.acquire(), Outcome.SUCCESS)
    # At most the one re-read made when the subscription comes up (rejoin); none per call.
    assert _evals(redis_server) - before <= 1


def test_a_success_with_failures_pending_elsewhere_resets_the_fleet(
    breakers: Callable[..., CircuitBreaker],
) -> None:
    a, b = breakers(failure_threshold=3), breakers(failure_threshold=3)
    b.record(b.acquire(), Outcome.SUCCESS)
    a.record(a.acquire(), Outcome.FAILURE, "503")
    a.record(a.acquire(), Outcome.FAILURE, "503")
    wait_until(lambda: b.consecutive_failures == 2, "b to hear of a's failures")
    b.record(b.acquire(), Outcome.SUCCESS)  # pending failures: this one goes to the store
    wait_until(lambda: a.consecutive_failures == 0, "a to hear of the reset")
    a.record(a.acquire(), Outcome.FAILURE, "503")
    assert a.state is CircuitState.CLOSED


def test_the_failure_rate_of_one_process_opens_the_fleet(
    breakers: Callable[..., CircuitBreaker],
) -> None:
    a = breakers(failure_threshold=100, failure_rate=50, minimum_calls=4)
    b = breakers(failure_threshold=100, failure_rate=50, minimum_calls=4)
    b.record(b.acquire(), Outcome.SUCCESS)
    for outcome in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.SUCCESS, Outcome.FAILURE):
        a.record(a.acquire(), outcome, "503")
    assert a.state is CircuitState.OPEN
    wait_until(lambda: b.state is CircuitState.OPEN, "b to hear of the opening")
    assert b.acquire() is None


def test_force_open_and_reset_act_on_the_fleet(breakers: Callable[..., CircuitBreaker]) -> None:
    a, b = breakers(), breakers()
    b.record(b.acquire(), Outcome.SUCCESS)
    a.force_open()
    assert a.forced
    wait_until(lambda: b.forced and b.state is CircuitState.OPEN, "b to hear of the override")
    assert b.acquire() is None
    b.reset()
    wait_until(lambda: a.state is CircuitState.CLOSED and not a.forced, "a to hear of the reset")
    assert a.acquire() is not None


def test_forcing_an_open_circuit_is_a_transition_here_and_elsewhere(
    redis_server: RedisServer,
) -> None:
    # As in a process of its own (open -> open, cause "forced"): forcing holds an open
    # circuit open for good, and every process's metrics and logs must say so.
    store_here, here, _, seen_here = _observed(redis_server, failure_threshold=1)
    store_elsewhere, elsewhere, _, seen_elsewhere = _observed(redis_server, failure_threshold=1)
    try:
        elsewhere.record(elsewhere.acquire(), Outcome.SUCCESS)  # its first read is made
        here.record(here.acquire(), Outcome.FAILURE, "503")
        assert here.state is CircuitState.OPEN
        wait_until(lambda: elsewhere.state is CircuitState.OPEN, "elsewhere to hear of the opening")
        here.force_open()
        for breaker, seen in ((here, seen_here), (elsewhere, seen_elsewhere)):
            wait_until(lambda: breaker.forced and seen[-1].cause == FORCED, "the override reported")  # noqa: B023
            assert (seen[-1].from_state, seen[-1].to_state) == (OPEN, OPEN), seen
    finally:
        store_here.close()
        store_elsewhere.close()


class _HeldFirstRead:
    """The store, with its first ``load`` reply held back until ``meanwhile`` has run: the
    race of a process's first read with a change made elsewhere while the reply is on its
    way (on a busy machine, the reply's thread may wait for a CPU for a long while)."""

    def __init__(self, store: Any, meanwhile: Callable[[], None], *, subscribe: bool = True):
        self._store = store
        self._meanwhile: Any = meanwhile
        self._subscribe = subscribe
        self.rejoin: Callable[[], None] = lambda: None

    def load(self, circuit: str) -> Any:
        fleet = self._store.load(circuit)
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return fleet

    def watch(self, circuit: str, watcher: Any, on_rejoin: Callable[[], None]) -> None:
        self.rejoin = on_rejoin
        if self._subscribe:
            self._store.watch(circuit, watcher, on_rejoin)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _open_stores(server: RedisServer) -> tuple[Any, Any]:
    here, elsewhere = (open_store(parse_state_url(server.url), 2.0) for _ in range(2))
    assert here.wait_until_subscribed(DEADLINE)
    return here, elsewhere


def test_an_opening_published_while_the_first_read_is_on_its_way_is_not_lost(
    redis_server: RedisServer,
) -> None:
    here, elsewhere = _open_stores(redis_server)
    heard = threading.Event()

    def open_the_fleet_elsewhere() -> None:
        assert elsewhere.move(NAME, 0, "open", "503", 30.0, False).state == "open"
        assert heard.wait(DEADLINE)  # the breaker's watcher was told first

    try:
        store = _HeldFirstRead(here, open_the_fleet_elsewhere)
        breaker = on_store(store)
        here.watch(NAME, lambda fleet: heard.set() if fleet.state == "open" else None, lambda: None)
        # The first read answers "closed", older than the opening heard meanwhile.
        assert breaker.acquire() is None
        assert breaker.state is CircuitState.OPEN
    finally:
        here.close()
        elsewhere.close()


def test_an_opening_made_before_the_subscription_and_after_the_first_read_is_not_lost(
    redis_server: RedisServer,
) -> None:
    here, elsewhere = _open_stores(redis_server)
    store: Any = None

    def open_the_fleet_then_subscribe() -> None:
        # Published before this process listened, so nobody here hears it; then the
        # subscription comes up (rejoin) while the first read's reply is still on its way.
        assert elsewhere.move(NAME, 0, "open", "503", 30.0, False).state == "open"
        store.rejoin()

    try:
        store = _HeldFirstRead(here, open_the_fleet_then_subscribe, subscribe=False)
        breaker = on_store(store)
        assert breaker.acquire() is None
        assert breaker.state is CircuitState.OPEN
    finally:
        here.close()
        elsewhere.close()


def test_the_policy_is_the_breakers_own_and_only_the_state_is_shared(
    breakers: Callable[..., CircuitBreaker], redis_server: RedisServer
) -> None:
    a = breakers(failure_threshold=3)
    b = breakers(failure_threshold=3)
    assert type(a) is CircuitBreaker
    assert isinstance(a.backend, SharedState)
    for breaker in (a, b, a):  # three failures, counted across both
        breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
    assert a.state is CircuitState.OPEN
    wait_until(lambda: b.state is CircuitState.OPEN, "b to hear of the opening")
    assert redis_server.cli("hget", state_key(NAME), "st").strip() == "open"
    assert b.acquire() is None  # rejected from the mirror: the open period is the store's


def test_the_open_period_grows_with_failed_probes_anywhere_in_the_fleet(
    redis_server: RedisServer,
) -> None:
    stores = [open_store(parse_state_url(redis_server.url), 2.0) for _ in range(2)]
    clocks = [FakeClock(), FakeClock()]
    policy = {"failure_threshold": 1, "recovery_timeout": 0.05, "recovery_timeout_max": 0.4}
    a, b = (on_store(store, clock, **policy) for store, clock in zip(stores, clocks))

    def open_for_ms() -> int:
        return int(redis_server.cli("hget", state_key(NAME), "open_for"))

    def fail_a_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
        permit: list[Any] = [None]

        def probe() -> bool:
            clock.advance(1.0)  # past the mirror's open period: the store's clock decides
            permit[0] = breaker.acquire()
            return permit[0] is not None

        wait_until(probe, "a probe to be admitted")
        assert permit[0].is_probe
        breaker.record(permit[0], Outcome.FAILURE, "503")

    try:
        a.record(a.acquire(), Outcome.FAILURE, "503")
        assert open_for_ms() == 50
        fail_a_probe(b, clocks[1])  # b's failed probe: reopenings 1 in the store
        assert open_for_ms() == 100
        fail_a_probe(a, clocks[0])  # a reads the reopenings b made: 2
        assert open_for_ms() == 200
        fail_a_probe(b, clocks[1])
        assert open_for_ms() == 400  # recovery_timeout_max
        assert int(redis_server.cli("hget", state_key(NAME), "reop")) == 3
    finally:
        for store in stores:
            store.close()


class _Deaf:
    """A store whose process hears nothing published: its mirror lags the fleet's state."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def watch(self, circuit: str, watcher: Any, on_rejoin: Callable[[], None]) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_probe_counted_in_the_background_closes_the_circuit_when_the_store_says_enough(
    redis_server: RedisServer,
) -> None:
    # Two probes in flight, in two processes; b's outcome goes to its store's thread (its
    # call waited on the store once already) and b never heard of a's success: b's policy
    # sees 1 of 2 successes, the store counts 2. The store's count must close the circuit,
    # not a third probe.
    stores = [open_store(parse_state_url(redis_server.url), 2.0) for _ in range(2)]
    clocks = [FakeClock(), FakeClock()]
    policy = {
        "failure_threshold": 1,
        "recovery_timeout": 0.05,
        "success_threshold": 2,
        "half_open_max_calls": 2,
    }
    a = on_store(stores[0], clocks[0], **policy)
    b = on_store(_Deaf(stores[1]), clocks[1], **policy)
    try:
        a.record(a.acquire(), Outcome.FAILURE, "503")  # open: b reads it on first use
        probes: list[Any] = []
        for breaker, clock in ((a, clocks[0]), (b, clocks[1])):

            def admitted(breaker: CircuitBreaker = breaker, clock: FakeClock = clock) -> bool:
                clock.advance(1.0)  # past the mirror's open period: the store's clock decides
                permit = breaker.acquire()
                if permit is not None:
                    probes.append(permit)
                return permit is not None

            wait_until(admitted, "a probe to be admitted")
        assert [permit.is_probe for permit in probes] == [True, True]
        a.record(probes[0], Outcome.SUCCESS)  # the store counts 1
        begin_call()  # b's call has waited once (its admission): its outcome goes behind
        waited()
        try:
            b.record(probes[1], Outcome.SUCCESS)
        finally:
            end_call()
        wait_until(
            lambda: redis_server.cli("hget", state_key(NAME), "st").strip() == "closed",
            "the store's second success to close the circuit",
        )
    finally:
        for store in stores:
            store.close()


def _observed(
    server: RedisServer, failure_threshold: int
) -> tuple[StateStore, CircuitBreaker, SharedState, list[Transition]]:
    """A breaker on its own patient store, and the transitions its observer heard."""
    store = open_store(parse_state_url(server.url), 2.0)
    seen: list[Transition] = []
    breaker = on_store(store, observer=seen.append, failure_threshold=failure_threshold)
    backend = breaker.backend
    assert isinstance(backend, SharedState)
    return store, breaker, backend, seen


def test_while_the_store_is_down_a_fresh_local_state_serves_and_the_fleet_wins_after(
    redis_server: RedisServer,
) -> None:
    store, breaker, backend, seen = _observed(redis_server, failure_threshold=2)
    try:
        breaker.force_open()
        breaker.reset()  # the fleet's seq is 2 now, a fresh local state's 0
        assert store.wait_until_subscribed(DEADLINE)
        assert backend.fleet_wide
        del seen[:]
        redis_server.kill()
        wait_until(lambda: not store.available, "the store's thread to notice")
        # The first failure finds the store down: it is counted by a fresh local state.
        breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
        assert not backend.fleet_wide
        assert type(backend._local) is LocalState
        breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
        assert breaker.state is CircuitState.OPEN  # judged by this process alone
        assert breaker.acquire() is None
        assert [(t.from_state, t.to_state) for t in seen] == [
            (CircuitState.CLOSED, CircuitState.OPEN)
        ]
        redis_server.start()  # same port, no data: the fleet's circuit is closed
        wait_until(lambda: backend.fleet_wide, "the rejoin")
        wait_until(lambda: breaker.state is CircuitState.CLOSED, "the fleet's state to win")
        assert seen[-1].to_state is CircuitState.CLOSED
        assert breaker.acquire() is not None
    finally:
        store.close()


def test_a_fleet_circuit_left_open_when_the_store_fails_is_announced_closed_here(
    redis_server: RedisServer,
) -> None:
    # The fresh local state that serves while the store is down is closed: the breaker
    # admits calls again, and the state gauge, logs and on_transition must say so rather
    # than go on showing the fleet's last word (open).
    store, breaker, _, seen = _observed(redis_server, failure_threshold=1)
    try:
        breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
        assert breaker.state is CircuitState.OPEN
        assert store.wait_until_subscribed(DEADLINE)
        redis_server.kill()
        wait_until(lambda: not store.available, "the store's thread to notice")
        assert breaker.acquire() is not None  # judged alone, from a fresh (closed) state
        assert breaker.state is CircuitState.CLOSED
        assert [(t.from_state, t.to_state, t.cause) for t in seen] == [
            (CircuitState.CLOSED, CircuitState.OPEN, "503"),
            (CircuitState.OPEN, CircuitState.CLOSED, STORE_DOWN_CAUSE),
        ]
    finally:
        store.close()


def test_a_store_that_fails_again_gets_a_fresh_local_state(redis_server: RedisServer) -> None:
    store = open_store(parse_state_url(redis_server.url), 2.0)
    breaker = on_store(store, failure_threshold=5)
    backend = breaker.backend
    assert isinstance(backend, SharedState)
    try:
        breaker.record(breaker.acquire(), Outcome.SUCCESS)
        assert store.wait_until_subscribed(DEADLINE)
        locals_seen = []
        for _ in range(2):
            redis_server.kill()
            breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
            locals_seen.append(backend._local)
            assert breaker.consecutive_failures == 1  # from scratch, this failure only
            redis_server.start()
            wait_until(lambda: backend.fleet_wide, "the rejoin")
        assert locals_seen[0] is not locals_seen[1]
    finally:
        store.close()


def test_no_store_round_trip_while_the_mirror_knows_the_circuit_is_open(
    breakers: Callable[..., CircuitBreaker], redis_server: RedisServer
) -> None:
    breaker = breakers(failure_threshold=1, recovery_timeout=60)
    breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
    assert breaker.state is CircuitState.OPEN
    before = _evals(redis_server)
    for _ in range(100):
        assert breaker.acquire() is None
    assert _evals(redis_server) - before <= 1  # at most the rejoin's read


class _Unavailable:
    """A store that is down from the start (never answered)."""

    available = False

    def watch(self, *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        from botocore_resilience.store import StoreUnavailable

        def unavailable(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("down")

        return unavailable


def test_a_process_that_starts_while_the_store_is_down_judges_alone() -> None:
    store: StateStore = _Unavailable()  # type: ignore[assignment]
    breaker = on_store(store, failure_threshold=2)
    for _ in range(2):
        breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
    assert breaker.state is CircuitState.OPEN
    assert breaker.acquire() is None


def test_reading_a_circuit_before_its_first_call_still_reads_the_fleet_state(
    breakers: Callable[..., CircuitBreaker], redis_server: RedisServer
) -> None:
    a = breakers(failure_threshold=1)
    a.record(a.acquire(), Outcome.FAILURE, "503")  # the fleet's circuit is open
    store = open_store(parse_state_url(redis_server.url), 2.0)
    try:
        assert store.wait_until_subscribed(DEADLINE)  # no rejoin will read it for b
        b = on_store(store, failure_threshold=1)
        assert b.probes_in_flight == 0
        assert b.state is CircuitState.OPEN
        assert b.acquire() is None
    finally:
        store.close()
