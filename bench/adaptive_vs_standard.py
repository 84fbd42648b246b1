"""Adaptive against standard retry mode in a throttling storm: how long the circuit takes to
open, how much client time the calls spend, how many requests are sent.

A local S3 (moto over HTTP) answers every request with 503 SlowDown from the start. THREADS
threads share one client of a session with the plugin installed (its defaults: 4 attempts,
failure_threshold 5), with botocore's real backoff and, in adaptive mode, its real token
bucket. Each thread calls ListObjectsV2 until the circuit has opened and it has met the
open circuit once. Figures per run:

* open_s: seconds from the storm's start to the circuit opening;
* client_s: wall time spent inside calls, summed over threads, until each thread met the
  open circuit (what the storm cost the application);
* sent: requests that reached the server by then; failed: calls that ended in SlowDown.

    python bench/adaptive_vs_standard.py [--threads 1,4] [--runs 3]
        [--modes standard,adaptive,default]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any, Optional

from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.breaker import Transition
from botocore_resilience.testing import SLOW_DOWN, LocalS3

DEADLINE = 300.0  # a run that has not opened by then is reported as such


def run(s3: LocalS3, bucket: str, mode: str, threads: int, extra: dict[str, Any]) -> dict[str, Any]:
    opened = threading.Event()
    opened_at: list[float] = []

    def on_transition(transition: Transition) -> None:
        if transition.to_state is CircuitState.OPEN and not opened_at:
            opened_at.append(time.monotonic())
            opened.set()

    session = s3.session()
    installation = botocore_resilience.install(
        session,
        registry=CollectorRegistry(),
        environ={},
        on_transition=on_transition,
        # "default": whatever the plugin chooses where nobody chose a mode.
        **({} if mode == "default" else {"retry_mode": mode}),
        **extra,
    )
    client = s3.client(session=session)
    client.list_objects_v2(Bucket=bucket)  # connection made, bucket known: outside the storm
    s3.reset()
    s3.inject(SLOW_DOWN, times=None)
    spent = [0.0] * threads
    failed = [0] * threads
    sent_at_open: list[int] = []
    start = time.monotonic()

    def worker(index: int) -> None:
        while time.monotonic() - start < DEADLINE:
            began = time.monotonic()
            try:
                client.list_objects_v2(Bucket=bucket)
            except CircuitBreakerOpen:
                spent[index] += time.monotonic() - began
                return
            except ClientError:
                failed[index] += 1
            spent[index] += time.monotonic() - began

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    opened.wait(DEADLINE)
    sent_at_open.append(s3.requests.total)
    for w in workers:
        w.join()
    result = {
        "open_s": (opened_at[0] - start) if opened_at else None,
        "client_s": sum(spent),
        "sent_at_open": sent_at_open[0],
        "sent": s3.requests.total,
        "failed": sum(failed),
    }
    installation.uninstall()
    s3.clear_faults()
    return result


def _median(values: list[Optional[float]]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "never"
    return f"{statistics.median(known):6.1f} ({min(known):.1f}-{max(known):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,4")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", default="standard,adaptive")
    args = parser.parse_args()
    with LocalS3() as s3:
        bucket = s3.create_bucket()
        for threads in (int(t) for t in args.threads.split(",")):
            for mode in args.modes.split(","):
                results = [run(s3, bucket, mode, threads, {}) for _ in range(args.runs)]
                print(
                    f"threads={threads} {mode:9s} open_s {_median([r['open_s'] for r in results])}"
                    f"  client_s {_median([r['client_s'] for r in results])}"
                    f"  sent@open {_median([r['sent_at_open'] for r in results])}"
                    f"  sent {_median([r['sent'] for r in results])}"
                    f"  failed {_median([r['failed'] for r in results])}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
