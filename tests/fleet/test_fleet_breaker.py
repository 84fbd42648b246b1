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
