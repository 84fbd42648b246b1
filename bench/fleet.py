"""Fleet-wide circuits on a real ``redis-server``: what a store buys, and what it costs.

    python bench/fleet.py                  # everything, ~3 minutes on 2 cores
    python bench/fleet.py --only storm     # storm, propagation, overhead

Sections:

storm
    8 worker processes x 4 threads (``tests/fleet/worker.py``) against :class:`LocalS3`
    in a 503 storm, each thread calling until its first ``CircuitBreakerOpen``: the
    failed calls that reached the server, with a store and without, over several runs.
propagation
    One process opens the circuit (its own key answers 503), seven others, which used
    the circuit once and wait, learn of it: the time from the opener's transition to
    each other process's transition (its log record), on ``CLOCK_MONOTONIC`` (shared by
    the processes of one host), over many rounds (an operator close between rounds),
    p50/p99; then each one's next call, rejected without asking the store.
overhead
    The healthy hot path with a store configured: a stubbed S3 ``HeadObject`` (nothing
    sent), bare botocore vs the plugin without a store vs the plugin with ``state_url``,
    interleaved rounds, paired ratios (the method of ``bench/overhead.py``).

Benchmarks report; they never assert.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

from _common import machine, stubbed_client, summary  # noqa: E402
from fleet.fleet import fleet  # noqa: E402
from fleet.redis_servers import RedisServer  # noqa: E402
from overhead import _head, _interleave, _paired, _plugin_client, _session, _Variant  # noqa: E402

from botocore_resilience.store import open_store, parse_state_url  # noqa: E402
from botocore_resilience.testing import SERVICE_UNAVAILABLE, LocalS3  # noqa: E402

print = functools.partial(print, flush=True)

THRESHOLD = 5


def _bucket(s3: LocalS3, keys: int) -> str:
    name = s3.create_bucket()
    for i in range(keys):
        s3._internal_client().put_object(Bucket=name, Key=f"w{i}", Body=b"x")
    return name


def storm(s3: LocalS3, server: RedisServer, runs: int) -> None:
    print(f"\n## 503 storm: 8 processes x 4 threads, failure_threshold={THRESHOLD}, {runs} runs")
    bucket = _bucket(s3, 8)
    variants = (
        ("store, state_timeout 0.05", 0.05),
        ("store, state_timeout 0.5", 0.5),
        ("no store", None),
    )
    for label, timeout in variants:
        sent, store_errors = [], []
        for _ in range(runs):
            install: dict[str, Any] = {"failure_threshold": THRESHOLD, "recovery_timeout": 300}
            if timeout is not None:
                install.update(state_url=server.url, state_timeout=timeout)
                server.cli("flushall")
            options = {"endpoint": s3.endpoint_url, "bucket": bucket, "threads": 4}
            with fleet(8, {**options, "install": install}) as workers:
                s3.reset()
                s3.inject(SERVICE_UNAVAILABLE, times=None, operation="GetObject")
                workers.send("go")
                summaries = workers.summaries()
            sent.append(s3.requests.count(operation="GetObject"))
            store_errors.append(sum(_errors(summary) for summary in summaries))
        print(
            f"  failed calls sent, {label:26} {sorted(sent)}  median {statistics.median(sent)}"
            f"  (store errors per run: {store_errors})"
        )


def _errors(summary: dict[str, Any]) -> int:
    total = 0
    for line in summary["store_metrics"]:
        if line.startswith(("botocore_state_store_errors_total{", "state_store_errors_total{")):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def propagation(s3: LocalS3, server: RedisServer, rounds: int) -> None:
    print(f"\n## Transition -> other processes, {rounds} rounds x 7 processes")
    bucket = _bucket(s3, 8)
    install = {
        "failure_threshold": THRESHOLD,
        "recovery_timeout": 300,
        "state_url": server.url,
        "state_timeout": 0.05,
    }
    options = {
        "endpoint": s3.endpoint_url,
        "bucket": bucket,
        "install": install,
        "plan": "once",
        "threads": 1,
    }
    operator = open_store(parse_state_url(server.url), 2.0)
    learned: list[float] = []
    rejected_next = 0
    server.cli("flushall")
    s3.reset()
    with fleet(8, options) as workers:
        opener, *others = workers.workers
        # Every process uses the circuit once (a healthy call), then waits: a success
        # anywhere would reset the fleet's count of the opener's failures.
        workers.send("go")
        for worker in workers.workers:
            worker.wait_for("call")
        s3.inject(SERVICE_UNAVAILABLE, times=None, key=opener.key)
        for _ in range(rounds):
            for _ in range(THRESHOLD):
                opener.send("go")
                opener.wait_for("call")
            opened = opener.wait_for("transition", to="open")["t"]
            for worker in others:
                learned.append(worker.wait_for("transition", to="open")["t"] - opened)
                worker.send("go")
                rejected_next += worker.wait_for("call")["r"] == "open"
            operator.force("s3/us-east-1", "closed", "reset")
            for worker in workers.workers:
                worker.wait_for("transition", to="closed")
    operator.close()
    ms = sorted(v * 1000 for v in learned)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    print(
        "  opener's transition -> another process's mirror open: "
        f"p50 {statistics.median(ms):.2f} ms  p99 {p99:.2f} ms  max {ms[-1]:.2f} ms  (n={len(ms)})"
    )
    print(
        f"  next call in those processes rejected (no store round trip): {rejected_next}/{len(ms)}"
    )


def overhead(server: RedisServer, rounds: int, calls: int) -> None:
    print(f"\n## Healthy path with a store: stubbed HeadObject, {rounds} rounds x {calls} calls")
    bare = _Variant("bare botocore", _head(stubbed_client(_session())))
    _i1, local_client = _plugin_client()
    local = _Variant("plugin, no store", _head(local_client))
    _i2, fleet_client = _plugin_client(state_url=server.url)
    shared = _Variant("plugin, state_url (Redis)", _head(fleet_client))
    evals_before = _evals(server)
    _interleave([bare, local, shared], rounds, calls)
    evals = _evals(server) - evals_before
    for clock in ("cpu", "wall"):
        print(f"\n{clock} time per call (µs):")
        for variant in (bare, local, shared):
            print(f"  {variant.name:28} {summary([v * 1e6 for v in getattr(variant, clock)])}")
        for variant in (local, shared):
            ratios, added = _paired(getattr(bare, clock), getattr(variant, clock))
            print(f"  {variant.name:28} ratio to bare {summary(ratios)}")
            print(f"  {'':28} added µs {summary(added)}")
    print(f"\n  store round trips during the {rounds * calls} timed calls with a store: {evals}")


def _evals(server: RedisServer) -> int:
    for line in server.cli("info", "commandstats").splitlines():
        if line.startswith("cmdstat_eval:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="storm,propagation,overhead")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(machine())
    server = RedisServer(tempfile.mkdtemp()).start()
    print(f"redis-server: {server.cli('info', 'server').split('redis_version:')[1].split()[0]}")
    try:
        with LocalS3() as s3:
            if "storm" in only:
                storm(s3, server, 2 if args.quick else 3)
            if "propagation" in only:
                propagation(s3, server, 5 if args.quick else 30)
        if "overhead" in only:
            # Many short rounds, paired: a slow stretch of the machine touches every variant alike.
            overhead(server, 40 if args.quick else 400, 50 if args.quick else 60)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
