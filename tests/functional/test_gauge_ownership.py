"""The state gauge shows the circuit that judges the calls, through install() and real HTTP.

Two ways to get two circuits of one name on one registry: a re-``install()`` with new
options while a call admitted by the old circuit is still in flight (the gauge follows
the new circuit), and two differently configured installations on two sessions (a
WARNING says that the gauge can show only one of them, and how to tell them apart).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.testing import SERVICE_UNAVAILABLE, LocalS3

pytestmark = pytest.mark.timeout(120)

NAME = "s3/us-east-1"


def gauge(registry: CollectorRegistry) -> Any:
    return registry.get_sample_value("botocore_circuit_breaker_state", {"circuit_name": NAME})


def test_reinstall_while_a_call_is_in_flight_leaves_the_gauge_on_the_new_circuit(
    s3: LocalS3, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    session = s3.session()
    botocore_resilience.install(session, registry=registry, failure_threshold=1, max_attempts=1)
    client = s3.client(session=session)
    bucket = s3.create_bucket()

    # Hold one call between admission (before-call) and sending, on a thread of its own.
    reached, release = threading.Event(), threading.Event()
    holder = threading.current_thread

    def hold(**_: Any) -> None:
        if holder().name == "in-flight":
            reached.set()
            assert release.wait(timeout=60)

    client.meta.events.register("before-send.s3.HeadBucket", hold)
    outcome: list[BaseException] = []

    def in_flight() -> None:
        try:
            client.head_bucket(Bucket=bucket)
        except BaseException as exc:  # the 503 we inject below
            outcome.append(exc)

    thread = threading.Thread(target=in_flight, name="in-flight")
    thread.start()
    assert reached.wait(timeout=60)

    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        # New options: a new circuit under the same name judges every call from now on.
        botocore_resilience.install(session, registry=registry, failure_threshold=3, max_attempts=1)
        client.head_bucket(Bucket=bucket)  # made by the new circuit: closed
        assert gauge(registry) == 0
        s3.inject(SERVICE_UNAVAILABLE, times=1)
        release.set()
        thread.join(timeout=60)
    assert len(outcome) == 1  # the old circuit judged it a failure and opened...
    assert gauge(registry) == 0  # ...but the gauge shows the circuit calls now meet
    client.head_bucket(Bucket=bucket)  # and it is closed indeed: nothing rejected
    assert not [r for r in caplog.records if "two installations" in r.getMessage()]


def test_two_configurations_sharing_circuit_names_on_one_registry_are_warned_about(
    s3: LocalS3, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    first, second = s3.session(), s3.session()
    botocore_resilience.install(first, registry=registry, failure_threshold=5)
    botocore_resilience.install(second, registry=registry, failure_threshold=2)
    bucket = s3.create_bucket()
    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        s3.client(session=first).head_bucket(Bucket=bucket)
        s3.client(session=second).head_bucket(Bucket=bucket)
    [warning] = [r for r in caplog.records if "two installations" in r.getMessage()]
    assert NAME in warning.getMessage()
    assert "BOTOCORE_RESILIENCE_NAME" in warning.getMessage()


def test_installations_with_their_own_names_are_not_warned_about(
    s3: LocalS3, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    first, second = s3.session(), s3.session()
    botocore_resilience.install(first, registry=registry, failure_threshold=5, name="a")
    botocore_resilience.install(second, registry=registry, failure_threshold=2, name="b")
    bucket = s3.create_bucket()
    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        s3.client(session=first).head_bucket(Bucket=bucket)
        s3.client(session=second).head_bucket(Bucket=bucket)
    assert not [r for r in caplog.records if "two installations" in r.getMessage()]
