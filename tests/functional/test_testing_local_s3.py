"""LocalS3: real boto3 clients over real HTTP see every fault, latency and refusal it injects.

No test sleeps: latency is the server's own deliberate delay, and only lower
bounds of wall time are ever asserted.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from botocore_resilience.testing import (
    ACCESS_DENIED,
    BAD_GATEWAY,
    CLIENT_TIMEOUT,
    ENDPOINT_CONNECTION_ERROR,
    INTERNAL_ERROR,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    SLOW_DOWN,
    TOO_MANY_REQUESTS,
    HTTPFault,
    LocalS3,
)

pytestmark = pytest.mark.timeout(30)

ONE_ATTEMPT = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=10
)
FOUR_ATTEMPTS = Config(
    retries={"mode": "standard", "total_max_attempts": 4}, connect_timeout=2, read_timeout=10
)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalS3]:
    with LocalS3() as s3:
        yield s3


@pytest.fixture
def s3(server: LocalS3) -> Iterator[LocalS3]:
    server.start()
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def bucket(s3: LocalS3) -> str:
    return s3.create_bucket()


def test_serves_s3_over_http_on_a_port_chosen_at_run_time(s3: LocalS3, bucket: str) -> None:
    assert s3.endpoint_url == f"http://127.0.0.1:{s3.port}"
    assert s3.port > 0
    client = s3.client(config=ONE_ATTEMPT)

    client.put_object(Bucket=bucket, Key="dir/ké y.txt", Body=b"hello")
    body = client.get_object(Bucket=bucket, Key="dir/ké y.txt")["Body"].read()

    assert body == b"hello"
    assert s3.requests.by_operation() == {"PutObject": 1, "GetObject": 1}
    get = s3.requests.records(operation="GetObject")[0]
    assert (get.method, get.bucket, get.key, get.status, get.fault) == (
        "GET",
        bucket,
        "dir/ké y.txt",
        200,
        None,
    )
    assert get.attempt == 1


def test_create_bucket_and_helpers_are_not_counted(s3: LocalS3) -> None:
    name = s3.create_bucket("explicit-name-" + str(s3.port))
    assert name in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    assert s3.requests.by_operation() == {"ListBuckets": 1}


def test_client_helper_uses_dummy_credentials_region_and_path_style(s3: LocalS3) -> None:
    client = s3.client(config=Config(s3={"payload_signing_enabled": True}))
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.s3 == {"payload_signing_enabled": True, "addressing_style": "path"}
    assert client._request_signer._credentials.access_key == "testing"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (SLOW_DOWN, 503, "SlowDown"),
        (SERVICE_UNAVAILABLE, 503, "ServiceUnavailable"),
        (INTERNAL_ERROR, 500, "InternalError"),
        (TOO_MANY_REQUESTS, 429, "TooManyRequests"),
        (REQUEST_TIMEOUT, 408, "RequestTimeout"),
        (CLIENT_TIMEOUT, 408, "ClientTimeout"),
        (ACCESS_DENIED, 403, "AccessDenied"),
        (BAD_GATEWAY, 502, "502"),  # bare: no body, botocore names it by its status
    ],
    ids=lambda v: str(v) if not isinstance(v, HTTPFault) else None,
)
def test_each_fault_reaches_a_real_client_as_sent(
    s3: LocalS3, bucket: str, fault: HTTPFault, status: int, code: str
) -> None:
    client = s3.client(config=ONE_ATTEMPT)
    client.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.inject(fault)

    with pytest.raises(ClientError) as raised:
        client.get_object(Bucket=bucket, Key="k")

    response = raised.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert response["Error"]["Code"] == code
    if fault.message:
        assert response["Error"]["Message"] == fault.message
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    assert s3.requests.count(operation="GetObject", faulted=True) == 1
    assert s3.faults_injected == 1
    # One-shot: the next call is answered by moto again.
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_fault_headers_are_sent(s3: LocalS3, bucket: str) -> None:
    s3.inject(HTTPFault(503, "SlowDown", "slow", headers={"Retry-After": "7"}))
    with pytest.raises(ClientError) as raised:
        s3.client(config=ONE_ATTEMPT).list_objects_v2(Bucket=bucket)
    assert raised.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "7"


def test_head_requests_get_no_body_so_botocore_names_the_status(s3: LocalS3, bucket: str) -> None:
    s3.inject(SLOW_DOWN)
    with pytest.raises(ClientError) as raised:
        s3.client(config=ONE_ATTEMPT).head_bucket(Bucket=bucket)
    assert raised.value.response["Error"]["Code"] == "503"


def test_fault_on_a_put_with_a_body_still_reaches_the_client(s3: LocalS3, bucket: str) -> None:
    # The layer reads the unread request body first; otherwise closing the socket
    # would reset the connection and the client would see a connection error instead.
    s3.inject(INTERNAL_ERROR, operation="PutObject")
    with pytest.raises(ClientError) as raised:
        s3.client(config=ONE_ATTEMPT).put_object(Bucket=bucket, Key="big", Body=b"x" * 3_000_000)
    assert raised.value.response["Error"]["Code"] == "InternalError"


def test_slowdown_is_retried_by_botocore_and_every_attempt_is_counted(
    s3: LocalS3, bucket: str
) -> None:
    client = s3.client(config=FOUR_ATTEMPTS)
    client.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.requests.reset()
    rule = s3.inject(SLOW_DOWN, times=2, operation="GetObject")

    response = client.get_object(Bucket=bucket, Key="k")

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert rule.fired == 2
    assert not rule.active
    gets = s3.requests.records(operation="GetObject")
    assert [(r.attempt, r.status) for r in gets] == [(1, 503), (2, 503), (3, 200)]


def test_a_sticky_fault_lasts_until_cleared(s3: LocalS3, bucket: str) -> None:
    client = s3.client(config=FOUR_ATTEMPTS)
    rule = s3.inject(INTERNAL_ERROR, times=None)

    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            client.list_objects_v2(Bucket=bucket)
        assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 3
    assert rule.fired == 8
    assert rule.remaining is None
    assert s3.faults == [rule]

    s3.clear_faults()
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert s3.requests.total == 9


def test_faults_match_by_method_bucket_key_and_operation(s3: LocalS3, bucket: str) -> None:
    other = s3.create_bucket()
    client = s3.client(config=ONE_ATTEMPT)
    client.put_object(Bucket=bucket, Key="a", Body=b"1")
    client.put_object(Bucket=bucket, Key="b", Body=b"2")
    s3.inject(ACCESS_DENIED, times=None, bucket=other)
    s3.inject(ACCESS_DENIED, times=None, method="put")
    s3.inject(ACCESS_DENIED, times=None, key="b")
    s3.inject(ACCESS_DENIED, times=None, operation="ListObjectsV2")

    assert client.get_object(Bucket=bucket, Key="a")["Body"].read() == b"1"
    client.list_objects(Bucket=bucket)
    for call in (
        lambda: client.head_bucket(Bucket=other),
        lambda: client.put_object(Bucket=bucket, Key="c", Body=b""),
        lambda: client.get_object(Bucket=bucket, Key="b"),
        lambda: client.list_objects_v2(Bucket=bucket),
    ):
        with pytest.raises(ClientError):
            call()
    assert s3.faults_injected == 4


def test_latency_is_applied_by_the_server(s3: LocalS3, bucket: str) -> None:
    client = s3.client(config=ONE_ATTEMPT)
    s3.latency = 0.25

    started = time.monotonic()
    client.head_bucket(Bucket=bucket)
    elapsed = time.monotonic() - started

    assert s3.requests.records()[0].added_latency == 0.25
    assert elapsed >= 0.25  # a lower bound only: never assert how fast things are


def test_latency_longer_than_the_read_timeout_is_a_read_timeout(s3: LocalS3, bucket: str) -> None:
    client = s3.client(
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=0.2)
    )
    s3.latency = 5
    with pytest.raises(ReadTimeoutError):
        client.head_bucket(Bucket=bucket)


def test_latency_must_not_be_negative(s3: LocalS3) -> None:
    with pytest.raises(ValueError, match="latency"):
        s3.latency = -1
    with pytest.raises(ValueError, match="latency"):
        s3.latency = float("nan")


def test_stopped_server_refuses_then_restarts_on_the_same_port(s3: LocalS3, bucket: str) -> None:
    client = s3.client(config=ONE_ATTEMPT)
    client.put_object(Bucket=bucket, Key="k", Body=b"kept")
    port = s3.port

    s3.stop()
    assert not s3.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with pytest.raises(EndpointConnectionError):
        client.get_object(Bucket=bucket, Key="k")
    s3.stop()  # idempotent

    s3.start()
    assert s3.port == port
    assert client.get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"
    # The refused attempt never reached the server.
    assert s3.requests.count(operation="GetObject") == 1


def test_stop_cuts_a_call_held_by_latency_short_and_the_client_sees_a_dropped_connection(
    s3: LocalS3, bucket: str
) -> None:
    client = s3.client(config=ONE_ATTEMPT)
    s3.latency = 60
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.head_bucket(Bucket=bucket)
        except BaseException as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert s3.wait_for_in_flight(1)
    assert s3.in_flight == 1

    s3.stop()
    caller.join(timeout=20)  # a hang guard: without the cut the call would be held 60 s

    assert not caller.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConnectionClosedError)
    [held] = s3.requests.records()
    assert (held.status, held.added_latency) == (None, 60)
    assert s3.in_flight == 0


def test_botocore_retries_a_refused_connection_until_the_server_is_back(
    s3: LocalS3, bucket: str
) -> None:
    client = s3.client(config=FOUR_ATTEMPTS)
    s3.stop()

    attempts: list[int] = []

    def restart_after_refusal(**kwargs: Any) -> None:
        # botocore decides about a retry here, after the refused first attempt.
        attempts.append(kwargs["attempts"])
        if isinstance(kwargs.get("caught_exception"), EndpointConnectionError):
            s3.start()

    client.meta.events.register("needs-retry.s3.HeadBucket", restart_after_refusal)
    response = client.head_bucket(Bucket=bucket)

    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert attempts == [1, 2]
    assert s3.requests.count(operation="HeadBucket") == 1


def test_context_manager_starts_and_stops() -> None:
    with LocalS3() as s3:
        assert s3.running
        port = s3.port
        s3.client(config=ONE_ATTEMPT).list_buckets()
    assert not s3.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_servers_keep_their_buckets_apart_and_clear_only_their_own(s3: LocalS3) -> None:
    mine = s3.create_bucket()
    with LocalS3() as other:
        theirs = other.create_bucket()
        other.client(config=ONE_ATTEMPT).put_object(Bucket=theirs, Key="k", Body=b"v")

        def names(server: LocalS3) -> list[str]:
            return [b["Name"] for b in server.client().list_buckets()["Buckets"]]

        assert theirs not in names(s3)
        assert mine not in names(other)

        other.clear_storage()
        assert names(other) == []
        assert mine in names(s3)
        other.create_bucket(theirs)  # the name is free again


def test_clear_storage_removes_objects_versions_and_uploads(s3: LocalS3) -> None:
    with LocalS3() as own:
        client = own.client(config=ONE_ATTEMPT)
        versioned = own.create_bucket()
        client.put_bucket_versioning(
            Bucket=versioned, VersioningConfiguration={"Status": "Enabled"}
        )
        for body in (b"1", b"2"):
            client.put_object(Bucket=versioned, Key="k", Body=body)
        client.delete_object(Bucket=versioned, Key="k")
        plain = own.create_bucket()
        client.put_object(Bucket=plain, Key="k", Body=b"v")
        client.create_multipart_upload(Bucket=plain, Key="upload")

        own.clear_storage()

        assert client.list_buckets()["Buckets"] == []


def test_only_http_faults_can_be_served(s3: LocalS3) -> None:
    with pytest.raises(TypeError, match="stop"):
        s3.inject(ENDPOINT_CONNECTION_ERROR)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        s3.inject(SLOW_DOWN, times=0)


def test_concurrent_clients_see_exactly_the_faults_injected(s3: LocalS3, bucket: str) -> None:
    client = s3.client(config=ONE_ATTEMPT.merge(Config(max_pool_connections=64)))
    rule = s3.inject(SLOW_DOWN, times=25)

    def call(_: int) -> str:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "ok"

    with ThreadPoolExecutor(max_workers=64) as pool:
        outcomes = list(pool.map(call, range(256)))

    assert outcomes.count("503") == 25
    assert outcomes.count("ok") == 231
    assert rule.fired == 25
    assert s3.requests.total == 256
    assert s3.requests.count(faulted=True) == 25


def test_reset_clears_faults_latency_and_counts(s3: LocalS3, bucket: str) -> None:
    s3.inject(SLOW_DOWN, times=None)
    with pytest.raises(ClientError):
        s3.client(config=ONE_ATTEMPT).head_bucket(Bucket=bucket)
    s3.latency = 1

    s3.reset()

    assert (s3.faults, s3.latency, s3.faults_injected, s3.requests.total) == ([], 0.0, 0, 0)
    assert bucket in [b["Name"] for b in s3.client().list_buckets()["Buckets"]]  # data stays


def test_repr_says_where_and_whether_it_runs(s3: LocalS3) -> None:
    assert repr(s3) == f"LocalS3({s3.endpoint_url}, running, account_id={s3.account_id!r})"
    assert "not started" in repr(LocalS3())
    with pytest.raises(RuntimeError, match="started"):
        LocalS3().endpoint_url  # noqa: B018


def _put_chunked(s3: LocalS3, bucket: str, key: str, chunks: list[bytes], *, cut: int) -> bytes:
    """PUT ``chunks`` as a ``Transfer-Encoding: chunked`` body over a raw socket, leaving
    out the last ``cut`` bytes of the framing, half-close, and return the status line."""
    framing = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks) + b"0\r\n\r\n"
    head = (
        f"PUT /{bucket}/{key} HTTP/1.1\r\nHost: 127.0.0.1:{s3.port}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", s3.port), timeout=10) as conn:
        conn.sendall(head + framing[: len(framing) - cut])
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while b"\r\n" not in answer:
            data = conn.recv(4096)
            if not data:
                break
            answer += data
    return answer.split(b"\r\n", 1)[0]


def test_a_chunked_body_reaches_moto_whole(s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    chunks = [b"a" * 1000, b"b" * 70000, b"c"]
    assert _put_chunked(s3, bucket, "whole", chunks, cut=0).split()[1] == b"200"
    body = s3.client().get_object(Bucket=bucket, Key="whole")["Body"].read()
    assert body == b"".join(chunks)


def test_a_chunked_body_cut_short_is_refused_and_never_read_past(s3: LocalS3) -> None:
    # werkzeug's chunked reader, given a short read, reported more bytes than it had
    # written, and CPython 3.12.1 copied past the buffer's end: a SIGSEGV of the whole
    # test process when s3transfer cancelled a part mid-upload. The layer reads the body
    # itself now, and a body that ends early is answered 400 and stored nowhere.
    bucket = s3.create_bucket()
    chunks = [b"x" * 5000, b"y" * 5000]
    assert _put_chunked(s3, bucket, "cut", chunks, cut=4000).split()[1] == b"400"
    with pytest.raises(ClientError) as raised:
        s3.client().head_object(Bucket=bucket, Key="cut")
    assert raised.value.response["Error"]["Code"] == "404"
    assert [r.status for r in s3.requests.records(method="PUT", bucket=bucket)] == [400]
