"""A streaming body that fails after the headers counts against the circuit, once
(docs/explanation/what-counts.md): the local S3 sends GetObject's status and headers, then
stalls or drops the body.

The stalled reads wait for the client's read timeout (1 s): the one real wait here, and no
assertion depends on how long it took.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable

import pytest
from botocore.config import Config
from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError

from botocore_resilience import CircuitState
from botocore_resilience.testing import DROPPED_BODY, BodyFault, LocalS3

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"
DATA = bytes(range(256)) * 256  # 64 KiB
SHORT_READ = Config(read_timeout=1, retries={"mode": "standard", "max_attempts": 1})
STALL = BodyFault("stall", after=1024, seconds=60)
BODY_ERRORS = (ReadTimeoutError, ResponseStreamingError, IncompleteReadError)


def stored(s3: LocalS3) -> str:
    bucket = s3.create_bucket()
    s3._internal_client().put_object(Bucket=bucket, Key="k", Body=DATA)
    return bucket


def failed_read(client: Any, bucket: str) -> Any:
    response = client.get_object(Bucket=bucket, Key="k")  # the headers: fine
    body = response["Body"]
    with pytest.raises(BODY_ERRORS):
        body.read()
    return body


def test_stalled_bodies_open_the_circuit(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed(config=SHORT_READ)
    bucket = stored(s3)
    s3.inject(STALL, times=None, operation="GetObject")
    for n in range(1, 5):
        failed_read(client, bucket)
        assert installation.breakers()[CIRCUIT].consecutive_failures == n
    breaker = installation.breakers()[CIRCUIT]
    failed_read(client, bucket)
    assert breaker.state is CircuitState.OPEN


def test_a_failed_body_counts_once(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed(config=SHORT_READ)
    bucket = stored(s3)
    s3.inject(DROPPED_BODY, times=None, operation="GetObject")

    body = failed_read(client, bucket)
    breaker = installation.breakers()[CIRCUIT]
    with contextlib.suppress(Exception):  # whatever a read after a failure does
        body.read()
    body.close()
    assert breaker.consecutive_failures == 1
    failed_read(client, bucket)
    assert breaker.consecutive_failures == 2


def test_a_body_read_to_its_end_is_the_success(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed(config=SHORT_READ)
    bucket = stored(s3)
    s3.inject(DROPPED_BODY, times=3, operation="GetObject")
    for _ in range(3):
        failed_read(client, bucket)
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.consecutive_failures == 3

    # Headers alone say nothing yet: the body may still fail.
    unread = client.get_object(Bucket=bucket, Key="k")["Body"]
    assert breaker.consecutive_failures == 3
    chunks = list(unread.iter_chunks(4096))
    assert b"".join(chunks) == DATA
    assert breaker.consecutive_failures == 0


def test_reads_in_parts_and_other_calls_unchanged(s3: LocalS3, installed: Installed) -> None:
    installation, client = installed(config=SHORT_READ)
    bucket = stored(s3)
    s3.inject(DROPPED_BODY, operation="GetObject")
    failed_read(client, bucket)
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.consecutive_failures == 1

    body = client.get_object(Bucket=bucket, Key="k")["Body"]
    assert body.read(0) == b""
    assert body.read(1000) == DATA[:1000]
    assert breaker.consecutive_failures == 1  # not the end yet
    assert body.read() == DATA[1000:]
    assert breaker.consecutive_failures == 0
    # A call without a body is judged at its headers, as before.
    s3.inject(DROPPED_BODY, operation="GetObject")
    failed_read(client, bucket)
    assert client.head_object(Bucket=bucket, Key="k")["ContentLength"] == len(DATA)
    assert breaker.consecutive_failures == 0
