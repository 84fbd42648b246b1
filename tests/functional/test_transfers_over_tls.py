"""s3transfer's managed transfers over HTTPS, with one part failing: the parts s3transfer
cancels because of it are not failures of the service (docs/explanation/what-counts.md).

When one part of a multipart upload fails, s3transfer makes every part still sending raise
the failed part's error from its body's ``read()``; over HTTPS botocore is sending the
body then, and wraps that in ``HTTPClientError``. The parts are held at the server (their
bodies unread) until the failed part's error has reached s3transfer, so that each of them
is mid-send when it is cancelled: the case seen in production, made certain.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry
from s3transfer.manager import TransferManager

import botocore_resilience
from botocore_resilience import CircuitState
from botocore_resilience.testing import ACCESS_DENIED, SLOW_DOWN, FakeClock, LocalS3
from botocore_resilience.testing._clients import make_client

from ._tls_front import TLSFront

CIRCUIT = "s3/us-east-1"
PART = 8 * 1024 * 1024  # larger than every socket buffer between client and server
PARTS = 4
THRESHOLD = PARTS - 1  # the cancelled siblings alone would open the circuit
TRANSFER = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=PARTS)


@pytest.fixture(scope="module")
def front(s3_server: LocalS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSFront]:
    front = TLSFront(s3_server.port, tmp_path_factory.mktemp("tls"))
    yield front
    front.close()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "big"
    with path.open("wb") as out:
        for part in range(PARTS):
            out.write(bytes([part]) * PART)
    return path


@pytest.fixture
def tls_client(s3: LocalS3, front: TLSFront) -> Iterator[tuple[Any, Any]]:
    session = s3.session()
    installation = botocore_resilience.install(
        session,
        registry=CollectorRegistry(),
        clock=FakeClock(),
        environ={},
        failure_threshold=THRESHOLD,
    )
    client = make_client(front.url, session=session, verify=str(front.certificate))
    yield installation, client
    installation.uninstall()


def upload_with_parts_in_flight(s3: LocalS3, client: Any, bucket: str, path: Path) -> None:
    """Upload ``path`` with part 1 answered by whatever fault the test injected and every
    other part held mid-send until part 1's error has failed the transfer."""
    holds = [s3.hold(operation="UploadPart", part_number=n) for n in range(2, PARTS + 1)]
    manager = TransferManager(client, TRANSFER)
    try:
        future = manager.upload(str(path), bucket, "big")
        assert all(hold.wait_for_held(1, timeout=60) for hold in holds)
        deadline = time.monotonic() + 60
        while not future.done():  # part 1 failed and s3transfer knows it
            assert time.monotonic() < deadline, "part 1 never failed the transfer"
            time.sleep(0.01)
        for hold in holds:
            hold.release()
        with pytest.raises(ClientError):
            future.result()
    finally:
        for hold in holds:
            hold.release()
        manager.shutdown()


def assert_circuit_closed_and_service_usable(
    installation: Any, client: Any, bucket: str, failures: int
) -> None:
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == failures
    assert client.list_objects_v2(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_part_refused_does_not_open_the_circuit(
    s3: LocalS3, tls_client: tuple[Any, Any], big_file: Path
) -> None:
    installation, client = tls_client
    bucket = s3.create_bucket()
    s3.inject(ACCESS_DENIED, operation="UploadPart", part_number=1)

    upload_with_parts_in_flight(s3, client, bucket, big_file)

    # The 403 is the service answering: a success for the circuit; the cancelled parts are
    # not counted at all.
    assert_circuit_closed_and_service_usable(installation, client, bucket, failures=0)


def test_a_part_failing_four_times_counts_once(
    s3: LocalS3, tls_client: tuple[Any, Any], big_file: Path
) -> None:
    installation, client = tls_client
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=4, operation="UploadPart", part_number=1)

    upload_with_parts_in_flight(s3, client, bucket, big_file)

    # Part 1's call failed (four 503s): one failure, below the threshold; its cancelled
    # siblings: none. (s3transfer's AbortMultipartUpload then succeeded, closing the run.)
    assert_circuit_closed_and_service_usable(installation, client, bucket, failures=0)


def test_a_download_with_a_part_refused_does_not_open_the_circuit(
    s3: LocalS3, tls_client: tuple[Any, Any], big_file: Path, tmp_path: Path
) -> None:
    installation, client = tls_client
    bucket = s3.create_bucket()
    client.upload_file(str(big_file), bucket, "big", Config=TRANSFER)
    s3.inject(ACCESS_DENIED, operation="GetObject")

    with pytest.raises(ClientError):
        client.download_file(bucket, "big", str(tmp_path / "copy"), Config=TRANSFER)

    assert_circuit_closed_and_service_usable(installation, client, bucket, failures=0)
