"""Series after many bucket names: the ``bucket`` label bounded by ``max_circuits``.

    python bench/bucket_series.py                      # 80,000 buckets, max_circuits 1000
    python bench/bucket_series.py --buckets 20000 --max-circuits 100000   # ~unbounded

Real calls over HTTP to the local S3 (``LocalS3``), four threads sharing one client,
``scope="bucket"``: one bucket that exists, every other name a bucket that does not
(``HeadBucket`` answers 404). Afterwards the registry is scraped once and the series
counted per family, with the size of the scrape. Counts, not times: the wall time is
printed only to say how long the run took.

Benchmarks report; they never assert.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections import Counter

from _common import machine
from botocore.config import Config
from prometheus_client import CollectorRegistry, generate_latest

import botocore_resilience
from botocore_resilience.testing import LocalS3

THREADS = 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buckets", type=int, default=80_000)
    parser.add_argument("--max-circuits", type=int, default=1000)
    args = parser.parse_args()
    print(machine())
    registry = CollectorRegistry()
    with LocalS3() as s3:
        session = s3.session()
        installation = botocore_resilience.install(
            session,
            registry=registry,
            environ={},
            scope="bucket",
            max_circuits=args.max_circuits,
            max_attempts=1,
        )
        client = s3.client(session=session, config=Config(max_pool_connections=THREADS * 2))
        real = s3.create_bucket()
        names = iter(range(args.buckets))
        lock = threading.Lock()
        errors = Counter[str]()

        def work() -> None:
            while True:
                with lock:
                    n = next(names, None)
                if n is None:
                    return
                bucket = real if n == 0 else f"missing-{n:06d}"
                try:
                    client.head_bucket(Bucket=bucket)
                except client.exceptions.ClientError:
                    pass  # 404: the bucket does not exist; the service answered
                except Exception as exc:  # counted, so a broken run is visible
                    with lock:
                        errors[type(exc).__name__] += 1

        started = time.monotonic()
        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        breakers = len(installation.breakers())

    scrape = generate_latest(registry)
    series = Counter[str]()
    buckets: set[str] = set()
    calls = 0.0
    for family in registry.collect():
        for sample in family.samples:
            series[family.name] += 1
            if sample.name == "botocore_operations_total":
                buckets.add(sample.labels["bucket"])
                calls += sample.value
    print(
        f"{args.buckets:,} bucket names, max_circuits={args.max_circuits:,}, "
        f"{THREADS} threads, {elapsed:.0f} s"
    )
    print(
        f"calls counted in operations_total: {calls:,.0f} (errors outside the service: "
        f"{dict(errors) or 'none'})"
    )
    print(
        f"distinct bucket label values: {len(buckets):,} (with __other__: {'__other__' in buckets})"
    )
    print(f"circuits: {breakers:,}")
    for name, count in sorted(series.items()):
        print(f"  {name:<45} {count:>10,} series")
    print(f"  {'total':<45} {sum(series.values()):>10,} series")
    print(f"scrape: {len(scrape) / 1e6:.2f} MB")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
