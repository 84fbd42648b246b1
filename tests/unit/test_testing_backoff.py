"""no_backoff(): botocore makes every retry it would make, and waits for none of them.

No test here measures time: sleeps are recorded (by the switch, and by a spy
on ``time.sleep``), and the token bucket is driven by a clock that never moves,
with which a real wait would never end.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.config import Config
from botocore.exceptions import CapacityNotAvailableError, ClientError
from botocore.retries.bucket import TokenBucket

from botocore_resilience.testing import SLOW_DOWN, FaultInjector, SkippedBackoff, no_backoff

pytestmark = pytest.mark.timeout(20)

ORIGINAL_ACQUIRE = TokenBucket.acquire


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every real ``time.sleep`` call, recorded instead of slept."""
    calls: list[float] = []
    monkeypatch.setattr(time, "sleep", calls.append)
    return calls


def always_slow_client(mode: str) -> Any:
    # The injector answers every attempt, so nothing is ever sent anywhere.
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": mode, "total_max_attempts": 4}),
    )
    FaultInjector(client).inject(SLOW_DOWN, times=None)
    return client


def test_without_it_botocore_sleeps_between_attempts(slept: list[float]) -> None:
    # The control: proves that, on this botocore, the backoff goes through time.sleep.
    with pytest.raises(ClientError) as raised:
        always_slow_client("standard").list_buckets()
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert len(slept) == 3
    assert all(delay > 0 for delay in slept)


def test_a_four_attempt_503_sequence_does_not_wait(slept: list[float]) -> None:
    with no_backoff() as skipped, pytest.raises(ClientError) as raised:
        always_slow_client("standard").list_buckets()

    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert slept == []
    assert len(skipped.delays) == 3  # what botocore asked for, and did not get
    assert all(delay > 0 for delay in skipped.delays)


def test_adaptive_mode_token_bucket_does_not_wait(slept: list[float]) -> None:
    # After a SlowDown, adaptive mode starts rate limiting from an empty bucket:
    # the next attempt would wait for a token on a threading.Condition.
    with no_backoff() as skipped, pytest.raises(ClientError) as raised:
        always_slow_client("adaptive").list_buckets()

    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert skipped.token_waits >= 1
    assert slept == []


class FrozenClock:
    """botocore's bucket clock, stopped: a blocking acquire on an empty bucket never returns."""

    def current_time(self) -> float:
        return 1000.0

    def sleep(self, amount: float) -> None:
        raise AssertionError("the bucket must not sleep")


def test_token_bucket_grants_without_waiting_and_records_it() -> None:
    bucket = TokenBucket(max_rate=0.5, clock=FrozenClock())
    with no_backoff() as skipped:
        assert bucket.acquire() is True
        assert bucket.acquire(2) is True
        # A caller that asked not to block is still told there is no capacity.
        with pytest.raises(CapacityNotAvailableError):
            bucket.acquire(block=False)
    assert skipped.token_waits == 2
    with pytest.raises(CapacityNotAvailableError):
        bucket.acquire(block=False)


def test_it_patches_exactly_two_names_and_puts_them_back() -> None:
    assert botocore.endpoint.time is time
    with no_backoff():
        assert botocore.endpoint.time is not time
        assert botocore.endpoint.time.monotonic is time.monotonic  # the rest is the real module
        assert TokenBucket.acquire is not ORIGINAL_ACQUIRE
    assert botocore.endpoint.time is time
    assert TokenBucket.acquire is ORIGINAL_ACQUIRE


def test_it_is_put_back_after_an_exception() -> None:
    with pytest.raises(RuntimeError), no_backoff():
        raise RuntimeError("boom")
    assert botocore.endpoint.time is time
    assert TokenBucket.acquire is ORIGINAL_ACQUIRE


def test_blocks_nest_and_each_records_what_happened_while_it_was_open() -> None:
    with no_backoff() as outer:
        botocore.endpoint.time.sleep(1)
        with no_backoff() as inner:
            botocore.endpoint.time.sleep(2)
        assert botocore.endpoint.time is not time  # the outer block still holds
        botocore.endpoint.time.sleep(3)
    assert botocore.endpoint.time is time
    assert outer.delays == [1, 2, 3]
    assert inner.delays == [2]


def test_overlapping_blocks_in_many_threads() -> None:
    start = threading.Barrier(32)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            start.wait()
            for _ in range(50):
                with no_backoff() as skipped:
                    botocore.endpoint.time.sleep(0.5)
                    assert 0.5 in skipped.delays
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert botocore.endpoint.time is time
    assert TokenBucket.acquire is ORIGINAL_ACQUIRE


def test_a_later_patch_by_someone_else_is_left_alone() -> None:
    theirs = object()
    with no_backoff():
        botocore.endpoint.time = theirs  # type: ignore[assignment]
    try:
        assert botocore.endpoint.time is theirs
        assert TokenBucket.acquire is ORIGINAL_ACQUIRE
    finally:
        botocore.endpoint.time = time


def test_fixture_and_record(resilience_no_backoff: SkippedBackoff) -> None:
    botocore.endpoint.time.sleep(7)
    assert resilience_no_backoff.delays == [7]
    assert repr(resilience_no_backoff) == "SkippedBackoff(delays=[7], token_waits=0)"
