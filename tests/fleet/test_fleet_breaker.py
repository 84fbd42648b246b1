"""FleetBreaker on a real ``redis-server``, two stores standing for two processes: the
hot path makes no round trip, the failure rate opens the fleet's circuit, overrides act
on the fleet. (The claims about separate processes are in test_fleet.py.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from botocore_resilience.breaker import BreakerPolicy, CircuitState, Outcome
from botocore_resilience.store import open_store, parse_state_url
from botocore_resilience.store.fleet import FleetBreaker
from botocore_resilience.testing import FakeClock

from .redis_servers import RedisServer

NAME = "s3/us-east-1"
DEADLINE = 30.0


def _evals(server: RedisServer) -> int:
    for line in server.cli("info", "commandstats").splitlines():
        if line.startswith("cmdstat_eval:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@pytest.fixture
def breakers(redis_server: RedisServer) -> Iterator[Callable[..., FleetBreaker]]:
    stores: list[Any] = []

    def make(**policy: Any) -> FleetBreaker:
        store = open_store(parse_state_url(redis_server.url), 2.0)
        stores.append(store)
        policy.setdefault("jitter", lambda: 0.0)
        return FleetBreaker(NAME, BreakerPolicy(**policy), FakeClock(), None, store)

    yield make
    for store in stores:
        store.close()


def _wait(predicate: Callable[[], bool], what: str) -> None:
    pause = threading.Event()
    for _ in range(int(DEADLINE / 0.01)):
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_healthy_call_makes_no_store_round_trip(
    breakers: Callable[..., FleetBreaker], redis_server: RedisServer
) -> None:
    breaker = breakers()
    breaker.record(breaker.acquire(), Outcome.SUCCESS)  # first use: reads the fleet state
    _wait(lambda: _evals(redis_server) >= 1, "the first read")
    before = _evals(redis_server)
    for _ in range(500):
        breaker.record(breaker.acquire(), Outcome.SUCCESS)
    # At most the one re-read made when the subscription comes up (rejoin); none per call.
    assert _evals(redis_server) - before <= 1


def test_a_success_with_failures_pending_elsewhere_resets_the_fleet(
    breakers: Callable[..., FleetBreaker],
) -> None:
    a, b = breakers(failure_threshold=3), breakers(failure_threshold=3)
    b.record(b.acquire(), Outcome.SUCCESS)
    a.record(a.acquire(), Outcome.FAILURE, "503")
    a.record(a.acquire(), Outcome.FAILURE, "503")
    _wait(lambda: b.consecutive_failures == 2, "b to hear of a's failures")
    b.record(b.acquire(), Outcome.SUCCESS)  # pending failures: this one goes to the store
    _wait(lambda: a.consecutive_failures == 0, "a to hear of the reset")
    a.record(a.acquire(), Outcome.FAILURE, "503")
    assert a.state is CircuitState.CLOSED


def test_the_failure_rate_of_one_process_opens_the_fleet(
    breakers: Callable[..., FleetBreaker],
) -> None:
    a = breakers(failure_threshold=100, failure_rate=50, minimum_calls=4)
    b = breakers(failure_threshold=100, failure_rate=50, minimum_calls=4)
    b.record(b.acquire(), Outcome.SUCCESS)
    for outcome in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.SUCCESS, Outcome.FAILURE):
        a.record(a.acquire(), outcome, "503")
    assert a.state is CircuitState.OPEN
    _wait(lambda: b.state is CircuitState.OPEN, "b to hear of the opening")
    assert b.acquire() is None


def test_force_open_and_reset_act_on_the_fleet(breakers: Callable[..., FleetBreaker]) -> None:
    a, b = breakers(), breakers()
    b.record(b.acquire(), Outcome.SUCCESS)
    a.force_open()
    assert a.forced
    _wait(lambda: b.forced and b.state is CircuitState.OPEN, "b to hear of the override")
    assert b.acquire() is None
    b.reset()
    _wait(lambda: a.state is CircuitState.CLOSED and not a.forced, "a to hear of the reset")
    assert a.acquire() is not None


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
        assert elsewhere.fail(NAME, 0, 1, 30.0, 0.0, "503").state == "open"
        assert heard.wait(DEADLINE)  # the breaker's watcher was told first

    try:
        store = _HeldFirstRead(here, open_the_fleet_elsewhere)
        policy = BreakerPolicy(jitter=lambda: 0.0)
        breaker = FleetBreaker(NAME, policy, FakeClock(), None, store)
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
        assert elsewhere.fail(NAME, 0, 1, 30.0, 0.0, "503").state == "open"
        store.rejoin()

    try:
        store = _HeldFirstRead(here, open_the_fleet_then_subscribe, subscribe=False)
        breaker = FleetBreaker(NAME, BreakerPolicy(jitter=lambda: 0.0), FakeClock(), None, store)
        assert breaker.acquire() is None
        assert breaker.state is CircuitState.OPEN
    finally:
        here.close()
        elsewhere.close()
