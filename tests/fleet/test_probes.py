"""Probes across a fleet of real processes: at most ``half_open_max_calls`` reach the
service at once, counted at the server, even when the probing process is SIGKILLed."""

from __future__ import annotations

from typing import Any

from botocore_resilience.testing import SERVICE_UNAVAILABLE, LocalS3

from .fleet import Worker, fleet
from .redis_servers import RedisServer
from .waits import wait_until

DEADLINE = 120.0


def _bucket(s3: LocalS3, workers: int) -> str:
    name = s3.create_bucket()
    for i in range(workers):
        s3._internal_client().put_object(Bucket=name, Key=f"w{i}", Body=b"x")
    return name


def _options(s3: LocalS3, bucket: str, server: RedisServer, **install: Any) -> dict[str, Any]:
    settings = {
        "failure_threshold": 3,
        "recovery_timeout": 1.0,  # real seconds on the store's clock
        "state_url": server.url,
        "state_timeout": 2.0,
        **install,
    }
    return {
        "endpoint": s3.endpoint_url,
        "bucket": bucket,
        "threads": 4,
        "plan": "loop",
        "install": settings,
    }


def _held_at_server(s3: LocalS3, prober: Worker) -> bool:
    """Whether the prober's call is held at the server (``True``) or answered first: rejected
    while the fleet is open, or (a busy machine kept this test from seeing it held) a probe
    that came back. No time limit on either: a loaded machine may take long to get there."""
    for _ in range(int(DEADLINE / 0.05)):
        if s3.wait_for_in_flight(1, timeout=0.05):
            return True
        if prober.has("call"):
            assert prober.wait_for("call")["r"] in ("open", "ok")
            return False
    raise AssertionError("the prober's call neither reached the server nor came back")


def test_at_most_half_open_max_calls_probes_reach_the_service_from_the_whole_fleet(
    s3: LocalS3, redis_server: RedisServer
) -> None:
    bucket = _bucket(s3, 8)
    # success_threshold beyond reach: the fleet stays half-open and keeps probing.
    options = _options(s3, bucket, redis_server, half_open_max_calls=2, success_threshold=10_000)
    options["probe_lease"] = 30.0
    with fleet(8, options) as workers:
        s3.reset()
        s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
        workers.send("go")
        # Until every process has seen a probe fail: by then (a whole open period later)
        # the calls admitted before the circuit opened have long ended.
        for worker in workers.workers:
            worker.wait_for("transition", to="open")
            worker.wait_for("transition", **{"from": "half_open", "to": "open"})
        s3.reset()  # healthy again, but slow: each probe holds its slot for 0.2 s
        s3.latency = 0.2
        wait_until(lambda: s3.requests.total >= 30, "30 probes", DEADLINE)
        peak = s3.max_in_flight
        workers.send("stop")
        summaries = workers.summaries()
    assert peak == 2  # 32 threads in 8 processes wanted to call all along
    for summary in summaries:
        assert summary["outcomes"].get("other", 0) == 0, summary


def test_a_probing_process_killed_mid_probe_does_not_wedge_the_fleet(
    s3: LocalS3, redis_server: RedisServer
) -> None:
    bucket = _bucket(s3, 2)
    # success_threshold beyond reach: the fleet stays half-open, probing one call at a time.
    options = _options(s3, bucket, redis_server, half_open_max_calls=1, success_threshold=10_000)
    # Short client timeouts: a probe's lease is what its call may take at most (the
    # handlers size it from them), so the dead prober's slot comes back within seconds.
    options["client_timeout"] = 2.0
    prober_options = {**options, "plan": "once", "threads": 1}
    with fleet(1, prober_options) as workers:
        (prober,) = workers.workers
        s3.reset()
        s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
        for _ in range(3):
            prober.send("go")
            prober.wait_for("call")
        prober.wait_for("transition", to="open")
        s3.reset()
        s3.latency = 1.0  # the probe is held at the server, shorter than its lease
        # Once the open period ran out on the store's clock, the prober's next call is the
        # probe: it reaches the server and stays there.
        while True:
            prober.send("go")
            if _held_at_server(s3, prober):
                break
        prober.kill()  # SIGKILL mid-probe: no outcome, no release, ever
        others: Worker = workers.add(options, key="w1")
        others.send("go")
        # Its threads are rejected while the dead probe's lease holds the slot, then probe,
        # one at a time.
        wait_until(
            lambda: sum(r.key == "w1" and r.status == 200 for r in s3.requests.records()) >= 3,
            "three probes of the other process",
            DEADLINE,
        )
        others.send("stop")
        (summary,) = workers.summaries([others])
    assert s3.max_in_flight == 1
    assert summary["outcomes"].get("open", 0) > 0, summary
    assert summary["outcomes"].get("other", 0) == 0, summary
