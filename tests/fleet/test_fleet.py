"""A fleet of real processes sharing circuits through a real ``redis-server``.

Each worker is a separate Python process (``worker.py``) with its own install, its own
S3 client and its own threads, calling the test's local S3 over HTTP; faults are
injected at the server, and every claim is counted there. Nothing here is timed: the
open periods are real seconds on the store's clock (there is no other clock a fleet
shares), and the tests wait for events with generous deadlines.
"""

from __future__ import annotations

from typing import Any

import pytest

from botocore_resilience.testing import SERVICE_UNAVAILABLE, LocalS3

from .fleet import fleet
from .redis_servers import RedisServer

PROCESSES = 8
THREADS = 4
THRESHOLD = 10


@pytest.fixture
def bucket(s3: LocalS3) -> str:
    name = s3.create_bucket()
    for i in range(PROCESSES + 4):
        s3._internal_client().put_object(Bucket=name, Key=f"w{i}", Body=b"x")
    s3.requests.reset()
    return name


def _options(s3: LocalS3, bucket: str, server: Any, **install: Any) -> dict[str, Any]:
    # A generous store timeout: these tests are about a healthy store on a busy machine;
    # test_store_failures.py is about a store that fails.
    settings = {"failure_threshold": THRESHOLD, "recovery_timeout": 300, "state_timeout": 2.0}
    settings.update(install)
    if server is not None:
        settings["state_url"] = server.url
    return {"endpoint": s3.endpoint_url, "bucket": bucket, "threads": THREADS, "install": settings}


def _gets(s3: LocalS3, key: Any = None) -> int:
    return sum(
        1
        for r in s3.requests.records()
        if r.operation == "GetObject" and (key is None or r.key == key)
    )


def test_a_503_storm_opens_the_fleet_after_threshold_failures_in_all(
    s3: LocalS3, bucket: str, redis_server: RedisServer
) -> None:
    options = _options(s3, bucket, redis_server)
    with fleet(PROCESSES, options) as workers:
        s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
        workers.send("go")
        summaries = workers.summaries()
    # Every thread of every process ended on a rejection, and nothing else went wrong.
    for summary in summaries:
        assert summary["outcomes"].get("open") == THREADS, summary
        assert summary["outcomes"].get("other", 0) == 0, summary
    sent = _gets(s3)
    failed = sum(s["outcomes"].get("error:ServiceUnavailable", 0) for s in summaries)
    assert sent == failed  # one attempt per call: what the server saw is what failed
    # failure_threshold in all, plus what was in flight when the store opened the circuit:
    # per thread, at most the call it was making then and one it started before its
    # process heard (the reply to that failure carries the fleet's state). Typically a
    # handful; without a store every process needs THRESHOLD failures of its own, >= 80.
    assert THRESHOLD <= sent < THRESHOLD + 2 * PROCESSES * THREADS
    assert sent < PROCESSES * THRESHOLD


def test_a_process_learns_of_an_opening_without_failing_itself(
    s3: LocalS3, bucket: str, redis_server: RedisServer
) -> None:
    options = {**_options(s3, bucket, redis_server), "plan": "once", "threads": 1}
    with fleet(2, options) as workers:
        opener, other = workers.workers
        for worker in (opener, other):  # both use the circuit (and read its state) first
            worker.send("go")
            assert worker.wait_for("call")["r"] == "ok"
        s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
        for _ in range(THRESHOLD):
            opener.send("go")
            assert opener.wait_for("call")["r"] == "error:ServiceUnavailable"
        opener.wait_for("transition", to="open")
        # Published: the other process hears of it without a call of its own.
        other.wait_for("transition", to="open")
        before = _gets(s3, other.key)
        other.send("go")
        assert other.wait_for("call")["r"] == "open"
        assert _gets(s3, other.key) == before  # rejected before anything was sent


def test_a_process_that_starts_during_an_outage_fails_fast_on_its_first_call(
    s3: LocalS3, bucket: str, redis_server: RedisServer
) -> None:
    options = {**_options(s3, bucket, redis_server), "plan": "once", "threads": 1}
    with fleet(1, options) as workers:
        (opener,) = workers.workers
        s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
        for _ in range(THRESHOLD):
            opener.send("go")
            opener.wait_for("call")
        opener.wait_for("transition", to="open")
        # A short-lived process (a CLI run, a cron job) starts now.
        late = workers.add(options, key="w9")
        late.send("go")
        assert late.wait_for("call")["r"] == "open"
        assert _gets(s3, "w9") == 0
