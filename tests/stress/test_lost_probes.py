"""Lost probes: a half-open probe whose outcome never arrives must not wedge its circuit.

A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``,
a gevent ``Timeout``) raised inside the transport skips botocore's ``after-call-error``
(botocore catches ``Exception`` there), so the breaker never hears how the probe ended.
The probe's slot goes with its call: once the interrupted call is over, the next probe
goes, under any number of threads. Only a call whose end nobody sees (its context kept
alive) holds its slot until its lease, sized from the client's timeouts.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.config import Config

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


def test_an_interrupted_probe_frees_its_slot_when_its_call_ends(
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

    # The call is over, so is its probe: the next two go at once and close the circuit.
    s3.requests.reset()
    client.head_bucket(Bucket=bucket)
    client.head_bucket(Bucket=bucket)
    assert s3.requests.total == 2
    assert breaker.state is CircuitState.CLOSED


def test_a_probe_whose_end_nobody_sees_holds_its_slot_until_its_lease(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    """The last resort: the interrupted call's traceback (and so its request context) is
    kept alive. Its slot is held for the lease the client's configuration allows
    (``attempts x (connect + read timeout + 25 s)``), not for ``recovery_timeout``."""
    config = Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 2})
    installation, client = installed(config=config)
    bucket = s3.create_bucket()
    open_circuit(s3, client, bucket)
    breaker = installation.breakers()[CIRCUIT]
    interrupter = Interrupter()
    client.meta.events.register("before-send.s3", interrupter)

    clock.advance(60)
    interrupter.armed = 1
    kept: list[BaseException] = []
    try:
        client.head_bucket(Bucket=bucket)
    except KeyboardInterrupt as error:
        kept.append(error)  # its traceback holds the call's frames: the call lives on
    s3.requests.reset()
    lease = 2 * (5 + 10 + 25)
    clock.advance(lease - 0.1)
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)
    assert s3.requests.total == 0
    clock.advance(0.1)  # the lease has run out
    client.head_bucket(Bucket=bucket)
    assert s3.requests.total == 1
    assert breaker.state is CircuitState.HALF_OPEN
    kept.clear()  # the old call ends now: its slot is long gone, nothing changes
    client.head_bucket(Bucket=bucket)
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
    assert s3.requests.total == 0

    # Their calls are over, and their slots with them: exactly max_calls new probes go
    # out at once (no time passes), and they close the circuit.
    rounds = 0
    while breaker.state is not CircuitState.CLOSED:
        rounds += 1
        assert rounds <= 2
        sent = s3.requests.total
        results = probe_round(client, threads, max_calls, one)
        assert results.count("success") == max_calls
        assert s3.requests.total - sent == max_calls
    assert interrupter.interrupted == max_calls
