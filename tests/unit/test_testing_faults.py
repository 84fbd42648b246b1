"""Fault values, their rendering (parsed back by botocore), rules, and S3 request naming."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from botocore.parsers import PROTOCOL_PARSERS, create_parser

from botocore_resilience.testing import (
    BAD_GATEWAY,
    ENDPOINT_CONNECTION_ERROR,
    READ_TIMEOUT,
    SLOW_DOWN,
    ConnectionFault,
    HTTPFault,
)
from botocore_resilience.testing._faults import render
from botocore_resilience.testing._rules import RuleBook
from botocore_resilience.testing._s3_requests import describe


def test_http_fault_is_a_read_only_value() -> None:
    headers = {"Retry-After": "1"}
    fault = HTTPFault(503, "SlowDown", "slow", headers=headers)
    headers["Retry-After"] = "2"
    assert fault.headers["Retry-After"] == "1"
    with pytest.raises(TypeError):
        fault.headers["X"] = "y"  # type: ignore[index]
    assert fault == HTTPFault(503, "SlowDown", "slow", headers={"Retry-After": "1"})


@pytest.mark.parametrize("status", [99, 600, "503", 503.0])
def test_http_fault_needs_a_status_code(status: object) -> None:
    with pytest.raises(ValueError, match="status"):
        HTTPFault(status)  # type: ignore[arg-type]


def test_connection_fault_builds_botocore_errors() -> None:
    error = READ_TIMEOUT.exception("http://127.0.0.1:1/b")
    assert isinstance(error, ReadTimeoutError)
    assert "http://127.0.0.1:1/b" in str(error)
    assert isinstance(ENDPOINT_CONNECTION_ERROR.exception("u"), EndpointConnectionError)
    with pytest.raises(TypeError, match="botocore exception class"):
        ConnectionFault(ValueError)  # type: ignore[arg-type]


def parse_error(protocol: str, status: int, headers: dict[str, str], body: bytes) -> Any:
    parser = create_parser(protocol)
    response = {"status_code": status, "headers": headers, "body": body}
    return parser.parse(response, None)


@pytest.mark.parametrize(
    ("protocol", "service"),
    [
        ("rest-xml", "s3"),
        ("rest-xml", "route53"),
        ("query", "sts"),
        ("ec2", "ec2"),
        ("json", "dynamodb"),
        ("rest-json", "lambda"),
        ("smithy-rpc-v2-cbor", "cloudwatch"),
    ],
)
def test_rendered_errors_parse_back_with_botocore(protocol: str, service: str) -> None:
    if protocol not in PROTOCOL_PARSERS:
        pytest.skip(f"botocore has no {protocol} parser yet")
    fault = HTTPFault(503, "SlowDown", 'a <b> & "c" é', headers={"Retry-After": "3"})
    wire = render(fault, protocol=protocol, service_id=service, request_id="RID")

    parsed = parse_error(protocol, wire.status, dict(wire.headers), wire.body)

    assert parsed["Error"]["Code"] == "SlowDown"
    assert parsed["Error"]["Message"] == fault.message
    assert wire.headers["Retry-After"] == "3"
    assert wire.headers["Content-Length"] == str(len(wire.body))
    assert wire.status_line == "503 Service Unavailable"


def test_a_fault_without_a_code_has_an_empty_body() -> None:
    wire = render(BAD_GATEWAY, protocol="rest-xml", service_id="s3")
    assert (wire.body, wire.status_line) == (b"", "502 Bad Gateway")
    parsed = parse_error("rest-xml", 502, dict(wire.headers), wire.body)
    assert parsed["Error"]["Code"] == "502"


def test_head_answers_have_no_body() -> None:
    assert render(SLOW_DOWN, protocol="rest-xml", service_id="s3", method="HEAD").body == b""


def test_unknown_status_codes_get_a_reason() -> None:
    assert render(HTTPFault(599), protocol="json", service_id="x").status_line == "599 Unknown"


def test_one_shot_rules_count_down_and_go() -> None:
    book: RuleBook[str] = RuleBook()
    rule = book.add("f", 2, {"operation": "GetObject", "bucket": None})
    assert rule.criteria == {"operation": "GetObject"}
    assert book.take({"operation": "PutObject"}) is None
    assert book.take({"operation": "GetObject", "bucket": "x"}) == "f"
    assert (rule.fired, rule.remaining, rule.active) == (1, 1, True)
    assert book.take({"operation": "GetObject"}) == "f"
    assert (rule.fired, rule.remaining, rule.active) == (2, 0, False)
    assert book.take({"operation": "GetObject"}) is None
    assert book.rules == []
    assert book.injected == 2


def test_rules_are_tried_in_the_order_they_were_added() -> None:
    book: RuleBook[str] = RuleBook()
    sticky = book.add("sticky", None, {})
    book.add("later", 1, {})
    assert [book.take({}) for _ in range(3)] == ["sticky"] * 3
    sticky.remove()
    assert book.take({}) == "later"
    assert "sticky" in repr(sticky)


def test_clear_deactivates_every_rule_but_keeps_the_count() -> None:
    book: RuleBook[str] = RuleBook()
    rule = book.add("f", None, {})
    book.take({})
    book.clear()
    assert not rule.active
    assert book.take({}) is None
    assert book.injected == 1
    book.reset_count()
    assert book.injected == 0


@pytest.mark.parametrize("times", [0, -1, 1.5, True])
def test_times_must_be_a_positive_integer_or_none(times: object) -> None:
    with pytest.raises(ValueError, match="times"):
        RuleBook().add("f", times, {})  # type: ignore[arg-type]


def test_a_rule_fires_exactly_times_under_contention() -> None:
    book: RuleBook[str] = RuleBook()
    rule = book.add("f", 100, {})
    hits: list[str | None] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            got = book.take({})
            with lock:
                hits.append(got)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hits.count("f") == 100
    assert rule.fired == 100


@pytest.mark.parametrize(
    ("method", "path", "query", "copy", "operation"),
    [
        ("GET", "/", "", False, "ListBuckets"),
        ("PUT", "/b", "", False, "CreateBucket"),
        ("HEAD", "/b", "", False, "HeadBucket"),
        ("DELETE", "/b", "", False, "DeleteBucket"),
        ("GET", "/b", "prefix=a&encoding-type=url", False, "ListObjects"),
        ("GET", "/b", "list-type=2&prefix=", False, "ListObjectsV2"),
        ("GET", "/b", "versions", False, "ListObjectVersions"),
        ("POST", "/b", "delete", False, "DeleteObjects"),
        ("GET", "/b", "versioning", False, "GetBucketVersioning"),
        ("PUT", "/b", "tagging", False, "PutBucketTagging"),
        ("GET", "/b/k/x", "", False, "GetObject"),
        ("GET", "/b/k", "versionId=1", False, "GetObject"),
        ("PUT", "/b/k", "", False, "PutObject"),
        ("PUT", "/b/k", "", True, "CopyObject"),
        ("HEAD", "/b/k", "", False, "HeadObject"),
        ("DELETE", "/b/k", "", False, "DeleteObject"),
        ("GET", "/b/k", "tagging", False, "GetObjectTagging"),
        ("POST", "/b/k", "uploads", False, "CreateMultipartUpload"),
        ("PUT", "/b/k", "partNumber=1&uploadId=u", False, "UploadPart"),
        ("POST", "/b/k", "uploadId=u", False, "CompleteMultipartUpload"),
        ("DELETE", "/b/k", "uploadId=u", False, "AbortMultipartUpload"),
    ],
)
def test_s3_operations_are_named(
    method: str, path: str, query: str, copy: bool, operation: str
) -> None:
    assert describe(method, path, query, copy_source=copy).operation == operation


def test_s3_requests_name_bucket_and_key() -> None:
    request = describe("get", "/b/dir/k", "")
    assert (request.method, request.bucket, request.key) == ("GET", "b", "dir/k")
    assert describe("GET", "/", "").bucket is None


def test_body_fault_values() -> None:
    from botocore_resilience.testing import DROPPED_BODY, STALLED_BODY, BodyFault

    assert (STALLED_BODY.kind, DROPPED_BODY.kind) == ("stall", "drop")
    assert BodyFault("drop", after=10).after == 10
    for bad in ({"kind": "hang"}, {"after": -1}, {"after": True}, {"seconds": -1.0}):
        with pytest.raises(ValueError, match="must be"):
            BodyFault(**bad)  # type: ignore[arg-type]


def test_local_s3_and_the_injector_speak_one_rule_vocabulary() -> None:
    from botocore_resilience.testing import FaultInjector, LocalS3

    for name in ("inject", "clear_faults", "faults", "faults_injected"):
        assert hasattr(LocalS3, name), name
        assert hasattr(FaultInjector, name), name
    injector = FaultInjector()
    rule = injector.inject(SLOW_DOWN, times=None)
    assert injector.faults == [rule]
    injector.clear_faults()
    assert (injector.faults, injector.faults_injected, injector.injected) == ([], 0, 0)
