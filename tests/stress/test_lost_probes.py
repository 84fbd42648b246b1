"""Lost probes: a half-open probe whose outcome never arrives must not wedge its circuit.

A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``,
a gevent ``Timeout``) raised inside the transport skips botocore's ``after-call-error``
(botocore catches ``Exception`` there), so the breaker never hears how the probe ended.
Its slot is leased: once ``recovery_timeout`` has passed on the clock, a new probe goes.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import SLOW_DOWN, FakeClock, LocalS3

from .conftest import WAIT, Installed
from .test_breaker_under_load import Tally, head_bucket, probe_round

pytestmark = [pytest.mark.stress, pytest.mark.timeout(120)]

CIRCUIT = "s3/us-east-1"


def open_circuit(s3: LocalS3, client: Any, bucket: str) -> None:
    s3.inject(SLOW_DOWN, times=None)
    tally = Tally()
    for _ in range(5):
        assert head_bucket(client, bucket, tally) == "error"
    s3.clear_faults()


class Interrupter:
    """A ``before-send`` handler that interrupts the calls it is armed for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.armed = 0
        self.interrupted = 0

    def __call__(self, **kwargs: Any) -> None:
        with self._lock:
            if self.armed <= 0:
                return
            self.armed -= 1
            self.interrupted += 1
        raise KeyboardInterrupt("the probe's thread was interrupted")


def call(client: Any, bucket: str, tally: Tally) -> str:
    try:
        return head_bucket(client, bucket, tally)
    except KeyboardInterrupt:
        return "interrupted"


def test_an_interrupted_probe_frees_its_slot_after_the_lease(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    breaker = installation.breakers()[CIRCUIT]
    interrupter = Interrupter()
    client.meta.events.register("before-send.s3", interrupter)
    tally = Tally()

    clock.advance(60)
    interrupter.armed = 1
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(call(client, bucket, tally)))
    worker.start()
    worker.join(WAIT)
    assert result == ["interrupted"]
    assert breaker.state is CircuitState.HALF_OPEN

    # The slot is still taken: nothing goes out, however long (short of the lease) we wait.
    s3.requests.reset()
    clock.advance(59)
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)
    assert s3.requests.total == 0

    clock.advance(1)  # the lease (recovery_timeout) has run out
    client.head_bucket(Bucket=bucket)
    client.head_bucket(Bucket=bucket)
    assert s3.requests.total == 2
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("max_calls", [1, 3])
def test_lost_probes_under_32_threads_never_wedge_the_circuit(
    s3: LocalS3, installed: Installed, clock: FakeClock, max_calls: int
) -> None:
    threads = 32
    installation, client = installed(half_open_max_calls=max_calls)
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    breaker = installation.breakers()[CIRCUIT]
    interrupter = Interrupter()
    # Registered before probe_round's gate: a probe is held, then interrupted.
    client.meta.events.register_last("before-send.s3", interrupter)
    tally = Tally()

    def one() -> str:
        return call(client, bucket, tally)

    # Every probe of the first race is lost.
    clock.advance(60)
    s3.requests.reset()
    interrupter.armed = max_calls
    results = probe_round(client, threads, max_calls, one)
    assert results.count("interrupted") == max_calls
    assert results.count("circuit_open") == threads - max_calls
    assert breaker.state is CircuitState.HALF_OPEN

    # Their slots stay taken until the lease runs out: every thread is turned away.
    clock.advance(30)
    assert probe_round(client, threads, 0, one) == ["circuit_open"] * threads
    assert s3.requests.total == 0

    # After the lease, exactly max_calls new probes go out, and they close the circuit.
    clock.advance(30)
    rounds = 0
    while breaker.state is not CircuitState.CLOSED:
        rounds += 1
        assert rounds <= 2
        sent = s3.requests.total
        results = probe_round(client, threads, max_calls, one)
        assert results.count("success") == max_calls
        assert s3.requests.total - sent == max_calls
    assert interrupter.interrupted == max_calls
