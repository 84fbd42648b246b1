"""The store fails mid-outage under a fleet of real processes: killed, hung (SIGSTOP),
restarted. No call fails because of it, each process judges alone meanwhile (one
WARNING), and the fleet shares its circuit again once the store answers."""

from __future__ import annotations

import threading
from typing import Any

from botocore_resilience.store import open_store, parse_state_url
from botocore_resilience.store.keys import state_key
from botocore_resilience.testing import SERVICE_UNAVAILABLE, LocalS3

from .fleet import Fleet, fleet
from .redis_servers import RedisServer

NAME = "s3/us-east-1"
LEGIT = {"ok", "open", "error:ServiceUnavailable"}


def _options(s3: LocalS3, server: RedisServer, **install: Any) -> dict[str, Any]:
    bucket = s3.create_bucket()
    for i in range(3):
        s3._internal_client().put_object(Bucket=bucket, Key=f"w{i}", Body=b"x")
    # A patient state_timeout (the default, 0.05 s, is for production calls): on a busy
    # machine a healthy store may take longer, and a timeout here would be one more
    # WARNING than the test means to provoke. (A killed store refuses at once; a hung one
    # still times out, after 2 s.)
    settings = {"failure_threshold": 3, "state_url": server.url, "state_timeout": 2.0, **install}
    return {
        "endpoint": s3.endpoint_url,
        "bucket": bucket,
        "threads": 2,
        "plan": "loop",
        "install": settings,
    }


def _store_warnings(workers: Fleet) -> list[list[str]]:
    """The store's log lines each worker wrote that no wait consumed (all that arrived)."""
    for worker in workers.workers:
        worker.has("log")  # pulls every event that arrived into ``seen``
    return [
        [e["msg"] for e in w.seen if e["ev"] == "log" and "state store" in e["msg"]]
        for w in workers.workers
    ]


def _check_no_call_failed_because_of_the_store(summaries: list[dict[str, Any]]) -> None:
    for summary in summaries:
        assert set(summary["outcomes"]) <= LEGIT, summary
        assert not summary["other_types"], summary


def test_store_killed_and_restarted_mid_outage(s3: LocalS3, redis_server: RedisServer) -> None:
    options = _options(s3, redis_server, recovery_timeout=300)
    with fleet(3, options) as workers:
        s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
        workers.send("go")
        for worker in workers.workers:
            worker.wait_for("transition", to="open")
        redis_server.kill()
        # Each process notices, says so once, and judges alone: a fresh local circuit
        # that opens after its own failure_threshold failures.
        for worker in workers.workers:
            assert "unavailable (" in worker.wait_for("log", level="WARNING")["msg"]
            worker.wait_for("transition", to="open")
        redis_server.start()  # same port, no data: the fleet's state was lost with it
        # They rejoin: the store answers, each process reads the fleet's state (closed,
        # nothing is left), and the fleet counts its failures together again: the store
        # holds the circuit open again. (A process that rejoins after that reads it open,
        # as it already judged it: no transition to see there.)
        _wait_for_store_state(redis_server, "open")
        # And every process hears the fleet's changes again: an operator's close reaches all.
        operator = open_store(parse_state_url(redis_server.url), 5.0)
        _close_until_everyone_hears(workers, operator)
        operator.close()
        workers.send("stop")
        summaries = workers.summaries()
    _check_no_call_failed_because_of_the_store(summaries)
    assert _store_warnings(workers) == [[], [], []]  # one each, the one read above
    for summary, worker in zip(summaries, workers.workers):
        metrics = "\n".join(summary["store_metrics"])
        up = [line for line in summary["store_metrics"] if "state_store_up{" in line]
        assert 'state_store_up{backend="redis"} 1.0' in metrics, (up, worker.seen[-8:])
        assert 'state_store_errors_total{error="connection"} 0.0' not in metrics


def test_store_hung_mid_outage_then_resumed(s3: LocalS3, redis_server: RedisServer) -> None:
    options = _options(s3, redis_server, recovery_timeout=1.0)
    with fleet(3, options) as workers:
        s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
        workers.send("go")
        for worker in workers.workers:
            worker.wait_for("transition", to="open")
        redis_server.hang()
        try:
            # The next probe each process asks the store for times out: it says so once
            # and judges alone.
            for worker in workers.workers:
                warning = worker.wait_for("log", level="WARNING")
                assert "(timeout)" in warning["msg"]
        finally:
            redis_server.resume()
        # Rejoined: an operator closing the circuit for the fleet reaches every process.
        operator = open_store(parse_state_url(redis_server.url), 5.0)
        _close_until_everyone_hears(workers, operator)
        workers.send("stop")
        summaries = workers.summaries()
    operator.close()
    _check_no_call_failed_because_of_the_store(summaries)
    assert _store_warnings(workers) == [[], [], []]


def _wait_for_store_state(server: RedisServer, state: str) -> None:
    pause = threading.Event()
    for _ in range(3000):
        if server.cli("hget", state_key(NAME), "st").strip() == state:
            return
        pause.wait(0.02)
    raise AssertionError(f"the store never held {NAME} {state}")


OPERATOR_CAUSE = "reset by the test's operator"


def _close_until_everyone_hears(workers: Fleet, operator: Any, attempts: int = 10) -> None:
    # A worker that has not rejoined yet misses a close; the store is asked again until
    # each has heard one (each attempt is an ordinary operator action). Each wait is 2 s
    # in all: the fleet reopens at once (the calls still fail), so a worker that missed a
    # close goes on hearing open/half_open changes, and only another close can reach it.
    # At most attempts x 2 s per deaf worker: a failure names it, well before pytest's timeout.
    # Only the operator's close counts (its cause): a worker also turns closed when it rejoins
    # (the restarted store holds nothing) or when its store fails again (a fresh local state),
    # and neither says that it hears the fleet.
    pending = list(workers.workers)
    for _ in range(attempts):
        operator.force(NAME, "closed", OPERATOR_CAUSE)
        still = []
        for worker in pending:
            try:
                worker.wait_for("transition", deadline=2.0, to="closed", cause=OPERATOR_CAUSE)
            except AssertionError:
                still.append(worker)
        pending = still
        if not pending:
            return
    deaf = "; ".join(f"worker {w.index} (last events: {w.seen[-6:]})" for w in pending)
    raise AssertionError(f"never heard any of the operator's {attempts} closes: {deaf}")


def test_the_password_never_shows_in_a_workers_logs_metrics_or_errors(
    s3: LocalS3, tmp_path: Any
) -> None:
    secret = "fleet-pa55-Zq9"
    server = RedisServer(str(tmp_path), password=secret).start()
    try:
        options = _options(s3, server, recovery_timeout=300)
        with fleet(1, options) as workers:
            (worker,) = workers.workers
            s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
            workers.send("go")
            worker.wait_for("transition", to="open")
            server.kill()  # errors: a WARNING naming the store, error counters
            warning = worker.wait_for("log", level="WARNING")
            workers.send("stop")
            (summary,) = workers.summaries()
        text = repr(warning) + repr(worker.seen) + repr(summary) + "".join(worker.stderr)
        assert "state store redis://:***@127.0.0.1" in text
        assert secret not in text
    finally:
        server.stop()
