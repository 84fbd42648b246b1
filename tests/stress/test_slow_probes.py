"""64 threads against a half-open circuit whose probes are slow, counted at the server.

The service answers every request late (``LocalS3.latency``), some probes fail (so
half-open periods fail while other probes of theirs are still out), and 64 threads call
without pause the whole time. Time moves on a clock that ticks with every read, so the
threads' own work makes many recovery timeouts pass while one probe is in flight: a
probe slot that expired with the recovery timeout (or was cleared when a period failed)
would let more probes through, and the server would see it.

What must hold: the server never holds more than ``half_open_max_calls`` requests at
once, and every rejection says when to come back (``retry_after > 0``).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import SLOW_DOWN, LocalS3

from .conftest import WAIT, Installed

pytestmark = [pytest.mark.stress, pytest.mark.timeout(300)]

THREADS = 64
RECOVERY_TIMEOUT = 0.3
TICK = 0.001  # seconds of clock time per read: 300 reads make a recovery timeout
LATENCY = 0.05  # real seconds the server holds each request
FAILED_PROBES = 3  # the first probes fail: failed half-open periods, others still out
GOOD_PROBES = 12


class TickingClock:
    """A clock that moves on by ``tick`` every time it is read: time passes with work done,
    never with a sleep."""

    def __init__(self, tick: float) -> None:
        self._tick = tick
        self._now = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            self._now += self._tick
            return self._now


@pytest.fixture
def clock() -> TickingClock:  # replaces the FakeClock of the shared `installed` fixture
    return TickingClock(TICK)


@pytest.mark.parametrize("max_calls", [1, 3])
def test_slow_probes_under_64_threads_never_exceed_the_limit_at_the_server(
    s3: LocalS3, installed: Installed, clock: TickingClock, max_calls: int
) -> None:
    installation, client = installed(
        half_open_max_calls=max_calls,
        recovery_timeout=RECOVERY_TIMEOUT,
        success_threshold=1000,  # stays half-open: every request the server sees is a probe
        max_attempts=1,  # one request per probe: a fault fails the probe, not an attempt
        # A generous lease (1 x (60 + 900 + 25) s of clock time), far beyond what the threads'
        # reads make the clock run on a busy machine: only the slot rules are under test.
        config=Config(read_timeout=900),
    )
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    for _ in range(5):
        with pytest.raises(ClientError):
            client.head_bucket(Bucket=bucket)
    breaker = installation.breakers()["s3/us-east-1"]
    assert breaker.state is CircuitState.OPEN
    s3.reset()  # no faults, no requests, max_in_flight 0
    s3.inject(SLOW_DOWN, times=FAILED_PROBES)
    s3.latency = LATENCY

    lock = threading.Lock()
    seen: Counter[str] = Counter()
    zero_waits: list[float] = []
    enough = threading.Event()
    start = threading.Barrier(THREADS)

    def work() -> None:
        start.wait(WAIT)
        while not enough.is_set():
            try:
                client.head_bucket(Bucket=bucket)
                result = "success"
            except CircuitBreakerOpen as error:
                result = "circuit_open"
                if not error.retry_after > 0:
                    with lock:
                        zero_waits.append(error.retry_after)
            except ClientError:
                result = "error"
            with lock:
                seen[result] += 1
                if seen["success"] >= GOOD_PROBES:
                    enough.set()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not any(thread.is_alive() for thread in threads)

    peak = s3.max_in_flight
    print(
        f"\nhalf_open_max_calls={max_calls}: probes in flight at the server (max) {peak}; "
        f"calls {dict(seen)}; rejections with retry_after == 0: {len(zero_waits)}; "
        f"requests {s3.requests.total}, clock {clock.monotonic():.0f} s"
    )
    assert seen["error"] == FAILED_PROBES  # failed half-open periods happened
    assert seen["success"] >= GOOD_PROBES
    assert peak == max_calls  # never more, and the limit was reached
    assert zero_waits == []
