"""Bounded series: many bucket names over real HTTP never grow the bucket label past the bound.

Counts series, never time. The full-size figure (80,000 bucket names) comes from
``bench/bucket_series.py``; this test runs the same workload at a size the suite can
afford, with a bound small enough that most calls land past it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from botocore_resilience.testing import LocalS3

pytestmark = pytest.mark.timeout(300)

BOUND = 40
BUCKETS = 400  # ten times the bound: mostly buckets that do not exist (404)


def series_by_family(registry: CollectorRegistry) -> Counter[str]:
    return Counter(sample.name for family in registry.collect() for sample in family.samples)


def test_bucket_label_values_stay_within_max_circuits(
    installed: Any, s3: LocalS3, registry: CollectorRegistry
) -> None:
    installation, client = installed(scope="bucket", max_circuits=BOUND, max_attempts=1)
    real = s3.create_bucket()
    calls = 0
    for n in range(BUCKETS):
        bucket = real if n % 10 == 0 else f"missing-{n}"
        with contextlib.suppress(client.exceptions.ClientError):  # 404: the service answered
            client.head_bucket(Bucket=bucket)
        calls += 1
    client.list_buckets()  # a call that names no bucket: bucket=""
    calls += 1

    buckets = Counter[str]()
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "botocore_operations_total":
                buckets[sample.labels["bucket"]] += int(sample.value)
    assert sum(buckets.values()) == calls  # every call counted once
    assert len(buckets.keys() - {"", "__other__"}) == BOUND
    # The first BOUND names seen keep their label (the real bucket, called every tenth
    # time, and 39 missing ones); every later missing bucket is counted under __other__.
    missing_calls = BUCKETS - BUCKETS // 10
    assert buckets[real] == BUCKETS // 10
    assert buckets["__other__"] == missing_calls - (BOUND - 1)
    series = series_by_family(registry)
    # HeadBucket x (BOUND buckets + __other__) x (success, error), plus ListBuckets' one.
    assert series["botocore_operations_total"] <= (BOUND + 1) * 2 + 1
    assert series["botocore_operation_duration_seconds_count"] <= BOUND + 2
    assert series["botocore_circuit_breaker_state"] <= BOUND + 1  # and the service circuit
    assert len(installation.breakers()) <= BOUND + 1
