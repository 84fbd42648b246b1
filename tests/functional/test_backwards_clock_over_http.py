"""An injected clock that goes backwards: no negative durations, no stretched open period.

``clock=`` is the user's object; nothing promises it is monotonic. Over real HTTP against
the local S3, the clock is set back in the middle of a call and while a circuit is open.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen
from botocore_resilience.testing import SLOW_DOWN, LocalS3


class SettableClock:
    """A clock a test sets to any time, backwards included."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_clock_going_back_mid_call_gives_no_negative_duration(s3: LocalS3) -> None:
    clock = SettableClock()
    registry = CollectorRegistry()
    session = s3.session()
    botocore_resilience.install(session, registry=registry, clock=clock, environ={})
    try:
        client = s3.client(session=session)
        bucket = s3.create_bucket()

        def go_back(**kwargs: Any) -> None:
            clock.now -= 500.0  # the call "ends before it started"

        client.meta.events.register("before-send.s3", go_back)
        client.head_bucket(Bucket=bucket)
        labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket}
        count = registry.get_sample_value("botocore_operation_duration_seconds_count", labels)
        total = registry.get_sample_value("botocore_operation_duration_seconds_sum", labels)
        assert count == 1
        assert total == 0.0
    finally:
        botocore_resilience.uninstall(session)


def test_a_clock_going_back_while_open_waits_at_most_one_recovery_timeout(s3: LocalS3) -> None:
    clock = SettableClock()
    session = s3.session()
    botocore_resilience.install(
        session,
        registry=CollectorRegistry(),
        clock=clock,
        environ={},
        failure_threshold=1,
        jitter=lambda: 0.0,  # the open period is exactly recovery_timeout
    )
    try:
        client = s3.client(session=session)
        bucket = s3.create_bucket()
        s3.inject(SLOW_DOWN, times=None)
        with pytest.raises(ClientError):
            client.head_bucket(Bucket=bucket)
        s3.clear_faults()
        clock.now = 10.0  # 990 s back, while the circuit is open
        with pytest.raises(CircuitBreakerOpen) as rejected:
            client.head_bucket(Bucket=bucket)
        assert 0 < rejected.value.retry_after <= 60
        clock.now = 70.0  # one recovery timeout after the clock went back
        client.head_bucket(Bucket=bucket)  # a probe goes
    finally:
        botocore_resilience.uninstall(session)
