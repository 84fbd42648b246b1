"""No AWS call waits on the state store more than once, so never more than ``state_timeout``.

A call may need several store operations: its circuit's first read, a probe slot and its
lease, the failure, the opening, the probe's outcome and the closing. Each is bounded by
``state_timeout``; the first one a call makes runs in the caller's thread, and the rest go
to the store's own thread (as on an asyncio event loop). Counted here, over real HTTP to
the local S3 and a real ``redis-server``, by the thread each round trip runs on; nothing is
timed. The fleet still hears every operation: the store's state is read back after each.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen
from botocore_resilience.store.keys import state_key
from botocore_resilience.store.wiring import store_for
from botocore_resilience.testing import SERVICE_UNAVAILABLE, FakeClock, LocalS3

from .redis_servers import RedisServer
from .waits import wait_until

CIRCUIT = "s3/us-east-1"
DEADLINE = 30.0


class RoundTrips:
    """Every store round trip of this process, by the thread it ran on."""

    def __init__(self, store: Any) -> None:
        self.callers: list[str] = []
        self.operations: list[tuple[Any, ...]] = []
        run = store._run

        def counted(*args: Any) -> Any:
            self.callers.append(threading.current_thread().name)
            self.operations.append(args[1:])
            return run(*args)

        store._run = counted

    def take(self) -> list[str]:
        """The threads of the round trips made since the last take."""
        taken, self.callers = self.callers, []
        return taken


@pytest.fixture
def fleet_client(
    s3: LocalS3, redis_server: RedisServer
) -> Iterator[tuple[Any, RoundTrips, FakeClock, Any]]:
    clock = FakeClock()
    session = s3.session()
    installation = botocore_resilience.install(
        session,
        registry=CollectorRegistry(),
        environ={},
        clock=clock,
        jitter=lambda: 0.0,
        state_url=redis_server.url,
        state_timeout=5.0,
        max_attempts=1,
        failure_threshold=1,
        success_threshold=1,
        recovery_timeout=30,
    )
    store = store_for(installation.settings)
    trips = RoundTrips(store)
    try:
        client = s3.client(session=session, config=Config(connect_timeout=2, read_timeout=3))
        yield client, trips, clock, redis.Redis.from_url(redis_server.url)
    finally:
        installation.uninstall()
        store.close()


def _fleet_state(store: Any) -> str:
    state = store.hget(state_key(CIRCUIT), "st")
    return state.decode() if state is not None else "closed"


def _in_caller(trips: list[str]) -> int:
    here = threading.current_thread().name
    return sum(1 for name in trips if name == here)


def _open_the_fleet(s3: LocalS3, client: Any, store: Any) -> str:
    """One failed call (threshold 1) opens the fleet's circuit; the bucket it named."""
    bucket = s3.create_bucket()
    s3.inject(SERVICE_UNAVAILABLE, operation="HeadBucket")
    with pytest.raises(client.exceptions.ClientError):
        client.head_bucket(Bucket=bucket)
    wait_until(lambda: _fleet_state(store) == "open", "the fleet's circuit to open")
    return bucket


def test_a_first_call_that_fails_and_opens_the_fleet_waits_on_the_store_once(
    s3: LocalS3, fleet_client: tuple[Any, RoundTrips, FakeClock, Any]
) -> None:
    client, trips, _clock, store = fleet_client
    # Three operations: the circuit's first read, the failure, the opening.
    bucket = _open_the_fleet(s3, client, store)
    made = trips.take()
    assert _in_caller(made) == 1, made
    assert len(made) >= 3, made  # the rest ran on the store's thread
    with pytest.raises(CircuitBreakerOpen):  # and this process knows it, without asking
        client.head_bucket(Bucket=bucket)
    assert trips.take() == []


def test_a_probe_that_closes_the_fleet_waits_on_the_store_once(
    s3: LocalS3, fleet_client: tuple[Any, RoundTrips, FakeClock, Any]
) -> None:
    client, trips, clock, store = fleet_client
    bucket = _open_the_fleet(s3, client, store)
    # The open period is measured on the store's clock: the probe waits for it there.
    store.hset(state_key(CIRCUIT), "opened", 0)
    clock.advance(31)
    trips.take()
    # A probe: its slot, the slot's lease, its outcome, the closing.
    client.head_bucket(Bucket=bucket)
    wait_until(lambda: _fleet_state(store) == "closed", "the fleet's circuit to close")
    made = trips.take()
    assert _in_caller(made) == 1, made
    assert len(made) >= 3, made
    # The slot was leased for what this call may take (1 attempt x (2 + 3 + 25) s) from
    # the start, not for the breaker's default until the later lease: a process killed in
    # between must not hold it longer.
    (admission,) = [args for args in trips.operations if args[0] == "admit"]
    assert admission[2] == 30_000, admission
    client.head_bucket(Bucket=bucket)
    assert trips.take() == []  # closed again: the healthy path makes no round trip


EXITS_RIGHT_AFTER = """
import sys

from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.testing._clients import make_client, make_session

endpoint, url = sys.argv[1], sys.argv[2]
session = make_session()
botocore_resilience.install(
    session, registry=CollectorRegistry(), environ={}, state_url=url, state_timeout=5.0,
    failure_threshold=1, max_attempts=1,
)
client = make_client(endpoint, session=session, config=Config(retries={"total_max_attempts": 1}))
try:
    client.head_bucket(Bucket=sys.argv[3])
except Exception as error:
    print(type(error).__name__)
"""


def test_a_process_that_exits_right_after_opening_the_circuit_leaves_it_open_for_the_fleet(
    s3: LocalS3, redis_server: RedisServer
) -> None:
    # An AWS CLI run, a cron job, a Lambda invocation: the call that opens the circuit is
    # its last. The opening, made on the store's thread, must not die with the process.
    bucket = s3.create_bucket()
    s3.inject(SERVICE_UNAVAILABLE, times=None, operation="HeadBucket")
    done = subprocess.run(
        [sys.executable, "-c", EXITS_RIGHT_AFTER, s3.endpoint_url, redis_server.url, bucket],
        capture_output=True,
        text=True,
        timeout=DEADLINE * 4,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ClientError", done.stdout + done.stderr
    assert _fleet_state(redis.Redis.from_url(redis_server.url)) == "open"
