"""Cleanup gets through an open circuit (docs/how-to/critical-and-best-effort.md).

s3transfer aborts a multipart upload whose parts failed. When those failures are what
opened the circuit, the abort comes after the opening; rejected, it would leave the upload
in progress (stored, billed, invisible in the bucket listing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

from botocore_resilience import CircuitBreakerOpen, CircuitState
from botocore_resilience.testing import SLOW_DOWN, LocalS3

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"
PART = 5 * 1024 * 1024  # s3transfer's smallest part
PARTS = 4
TRANSFER = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=1)


def in_progress_uploads(s3: LocalS3, bucket: str) -> list[Any]:
    listing = s3._internal_client().list_multipart_uploads(Bucket=bucket)
    return list(listing.get("Uploads", []))


def interrupted_upload(s3: LocalS3, client: Any, tmp_path: Path) -> str:
    """An upload whose first part fails (4 x 503 SlowDown), which opens the circuit
    (failure_threshold=1): s3transfer's abort comes after the opening."""
    bucket = s3.create_bucket()
    path = tmp_path / "big"
    path.write_bytes(b"x" * (PART * PARTS))
    s3.inject(SLOW_DOWN, times=None, operation="UploadPart")
    with pytest.raises((S3UploadFailedError, ClientError, CircuitBreakerOpen)):
        client.upload_file(str(path), bucket, "big", Config=TRANSFER)
    return bucket


def test_an_interrupted_upload_is_aborted_through_the_open_circuit(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry, tmp_path: Path
) -> None:
    installation, client = installed(failure_threshold=1)
    bucket = interrupted_upload(s3, client, tmp_path)

    # The parts' failures opened the circuit, and the upload was still cleaned up.
    assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN
    assert s3.requests.count(operation="AbortMultipartUpload") == 1
    assert in_progress_uploads(s3, bucket) == []
    # Counted like any call, and not as a rejection.
    labels = {"service": "s3", "operation": "AbortMultipartUpload", "bucket": bucket}
    assert (
        registry.get_sample_value("botocore_operations_total", {**labels, "result": "success"}) == 1
    )
    assert (
        registry.get_sample_value("botocore_operations_total", {**labels, "result": "circuit_open"})
        is None
    )
    # Everything else is still rejected.
    with pytest.raises(CircuitBreakerOpen):
        client.list_objects_v2(Bucket=bucket)


def test_no_exemption_when_none_is_set(s3: LocalS3, installed: Installed, tmp_path: Path) -> None:
    installation, client = installed(failure_threshold=1, exempt_operations="none")
    bucket = interrupted_upload(s3, client, tmp_path)

    assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN
    assert s3.requests.count(operation="AbortMultipartUpload") == 0
    assert len(in_progress_uploads(s3, bucket)) == 1


def test_an_exempt_operation_while_closed_is_judged_like_any_call(
    s3: LocalS3, installed: Installed
) -> None:
    installation, client = installed(failure_threshold=2, exempt_operations="ListObjectsV2")
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=None, operation="ListObjectsV2")
    for _ in range(2):
        with pytest.raises(ClientError):
            client.list_objects_v2(Bucket=bucket)
    # Its failures opened the circuit, as anyone's would...
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.OPEN
    # ...and once open it still goes out; other operations are rejected.
    s3.clear_faults()
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)
    assert breaker.state is CircuitState.OPEN  # a call let through is no probe
