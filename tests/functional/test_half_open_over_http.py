"""Half-open over real HTTP: a probe's slot is its call's, for as long as the call lives.

Real boto3 clients against the local S3. Time moves only on the fake clock; calls are
held where a test needs them in flight with events, never with sleeps.

A probe's slot is freed by its outcome, or, when the call ends without one, by the end of
its request context: the tests below end probes in every way that skips botocore's
``after-call``/``after-call-error`` events and show the next call going out at once,
not a lease later. (Each test catches the error itself: ``pytest.raises`` would keep the
traceback, and with it the call, alive.)
"""

from __future__ import annotations

import io
import threading
from typing import Any, Callable

import pytest
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import SLOW_DOWN, FakeClock, LocalS3

from ._helpers import fail_calls

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"
WAIT = 30.0


def open_then_wait_out(s3: LocalS3, client: Any, bucket: str, clock: FakeClock) -> None:
    """Open the circuit, then let its recovery timeout pass: the next call is a probe."""
    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 5)
    s3.clear_faults()
    clock.advance(60)
    s3.requests.reset()


def rejected(call: Callable[[], Any]) -> float:
    """The ``retry_after`` of a call that must be rejected."""
    try:
        call()
    except CircuitBreakerOpen as error:
        return float(error.retry_after)
    raise AssertionError("the call was not rejected")


class Hold:
    """A ``before-send`` handler that keeps the calls it catches in flight until released."""

    def __init__(self) -> None:
        self.arrived = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, **kwargs: Any) -> None:
        self.arrived.release()
        assert self.release.wait(WAIT)


def in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(work())
        except Exception as error:  # kept as its name only: no traceback kept alive
            result.append(type(error).__name__)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


# -- a slow probe (item: a slow but healthy service closes the circuit) -----------------------


def test_a_probe_slower_than_the_recovery_timeout_keeps_its_slot_and_closes_it(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed(recovery_timeout=0.3)
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 5)
    s3.clear_faults()
    breaker = installation.breakers()[CIRCUIT]
    clock.advance(0.3)
    s3.requests.reset()

    hold = Hold()
    client.meta.events.register("before-send.s3", hold)
    probe, result = in_thread(lambda: client.head_bucket(Bucket=bucket))
    assert hold.arrived.acquire(timeout=WAIT)
    # The probe takes "0.8 s" again and again: many recovery timeouts, one probe.
    for _ in range(40):
        clock.advance(0.8)
        assert rejected(lambda: client.head_bucket(Bucket=bucket)) > 0
    client.meta.events.unregister("before-send.s3", hold)
    hold.release.set()
    probe.join(WAIT)
    assert result
    assert result[0]["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.requests.total == 1  # nothing else reached the service meanwhile
    assert breaker.state is CircuitState.HALF_OPEN  # its success counted: one more needed
    client.head_bucket(Bucket=bucket)
    assert breaker.state is CircuitState.CLOSED


# -- probes that end without an outcome -------------------------------------------------------


class Boom(Exception):
    pass


def test_a_before_call_handler_raising_after_ours_frees_the_slot(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    open_then_wait_out(s3, client, bucket, clock)
    armed = [True]

    def user_handler(**kwargs: Any) -> None:
        if armed[0]:
            raise Boom("the user's own before-call handler")

    client.meta.events.register("before-call", user_handler)  # runs after ours
    try:
        client.head_bucket(Bucket=bucket)
        raise AssertionError("the user's handler did not raise")
    except Boom:
        pass
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.probes_in_flight == 0  # the call is over: so is its probe
    armed[0] = False
    client.head_bucket(Bucket=bucket)  # the next probe goes at once, not a lease later
    assert s3.requests.total == 1


class Unseekable(io.RawIOBase):
    """An upload body that cannot be rewound: botocore fails computing its checksum."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise OSError("the pipe broke")

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        raise io.UnsupportedOperation("seek")


def test_an_upload_body_that_fails_before_sending_frees_the_slot(
    s3: LocalS3, installed: Installed, clock: FakeClock
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    open_then_wait_out(s3, client, bucket, clock)
    try:
        client.put_object(Bucket=bucket, Key="k", Body=Unseekable())
        raise AssertionError("the upload did not fail")
    except (OSError, ValueError):
        pass  # io.UnsupportedOperation is both
    # (Older botocore fails such a body in a handler of its own that runs before ours.)
    assert installation.breakers()[CIRCUIT].probes_in_flight == 0
    client.head_bucket(Bucket=bucket)
    assert s3.requests.count(operation="HeadBucket") == 1


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_inside_the_transport_frees_the_slot(
    s3: LocalS3, installed: Installed, clock: FakeClock, interruption: type[BaseException]
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    open_then_wait_out(s3, client, bucket, clock)
    armed = [True]

    def interrupt(**kwargs: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise interruption("the probe's thread was interrupted")

    client.meta.events.register_last("before-send.s3", interrupt)
    try:
        client.head_bucket(Bucket=bucket)
        raise AssertionError("the transport was not interrupted")
    except interruption:
        pass
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.probes_in_flight == 0
    client.head_bucket(Bucket=bucket)
    client.head_bucket(Bucket=bucket)
    assert s3.requests.total == 2
    assert breaker.state is CircuitState.CLOSED


def test_uninstall_during_a_probe_then_install_again_frees_the_slot_when_the_call_ends(
    s3: LocalS3, clock: FakeClock, registry: CollectorRegistry
) -> None:
    session = s3.session()

    def install() -> Any:
        return botocore_resilience.install(
            session, registry=registry, clock=clock, environ={}, jitter=lambda: 0.0
        )

    first = install()
    try:
        client = s3.client(session=session)
        bucket = s3.create_bucket()
        open_then_wait_out(s3, client, bucket, clock)
        hold = Hold()
        client.meta.events.register("before-send.s3", hold)
        probe, result = in_thread(lambda: client.head_bucket(Bucket=bucket))
        assert hold.arrived.acquire(timeout=WAIT)

        botocore_resilience.uninstall(session)
        second = install()
        assert second.breakers()[CIRCUIT] is first.breakers()[CIRCUIT]  # the same circuit
        new_client = s3.client(session=session)
        assert rejected(lambda: new_client.head_bucket(Bucket=bucket)) > 0  # probe alive

        hold.release.set()
        probe.join(WAIT)
        assert result
        assert result[0]["ResponseMetadata"]["HTTPStatusCode"] == 200
        new_client.head_bucket(Bucket=bucket)  # its slot went with the call
        assert s3.requests.total == 2
    finally:
        botocore_resilience.uninstall(session)


# -- retry_after --------------------------------------------------------------------------------


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_rejections_say_when_to_come_back(
    s3: LocalS3, installed: Installed, clock: FakeClock, max_calls: int
) -> None:
    installation, client = installed(half_open_max_calls=max_calls, success_threshold=1)
    bucket = s3.create_bucket()
    open_then_wait_out(s3, client, bucket, clock)
    hold = Hold()
    client.meta.events.register("before-send.s3", hold)
    probes = [in_thread(lambda: client.head_bucket(Bucket=bucket)) for _ in range(max_calls)]
    for _ in range(max_calls):
        assert hold.arrived.acquire(timeout=WAIT)
    waits = [rejected(lambda: client.head_bucket(Bucket=bucket))]
    clock.advance(5)
    waits.append(rejected(lambda: client.head_bucket(Bucket=bucket)))
    assert waits[0] > 0  # never "now": every slot is taken
    assert waits[1] == pytest.approx(5.0)  # as long as the oldest probe has been out
    hold.release.set()
    for thread, _result in probes:
        thread.join(WAIT)
    assert installation.breakers()[CIRCUIT].state is CircuitState.CLOSED
