"""What the plugin logs, over real HTTP: the right lines, the right numbers, nothing secret.

Records are captured from logger ``botocore_resilience`` (and its children) at DEBUG.
botocore's own loggers are not ours to police: they are never inspected here.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from typing import Any, Callable

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen, CircuitState, logs
from botocore_resilience.metrics import Metrics
from botocore_resilience.testing import (
    ACCESS_DENIED,
    CLIENT_TIMEOUT,
    ENDPOINT_CONNECTION_ERROR,
    INTERNAL_ERROR,
    READ_TIMEOUT,
    REQUEST_TIMEOUT,
    SERVICE_UNAVAILABLE,
    SLOW_DOWN,
    TOO_MANY_REQUESTS,
    FakeClock,
    FaultInjector,
    HTTPFault,
    LocalS3,
)

from ._helpers import fail_calls, metadata_of

Installed = Callable[..., "tuple[Any, Any]"]
LOGGER = "botocore_resilience"
CIRCUIT = "s3/us-east-1"

# "retry 2 of s3 PutObject bucket=b key=dir/a.txt after 503 SlowDown"
RETRY_LINE = re.compile(
    r"retry (?P<attempt>\d+) of (?P<service>\S+) (?P<operation>\S+) "
    r"bucket=(?P<bucket>\S+) key=(?P<key>\S+) after (?P<reason>.+)\Z"
)


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Any:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    # Internal errors warn once per place per process: start each test with none reported.
    monkeypatch.setattr(logs, "_reported", set())
    return caplog


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER or r.name.startswith(LOGGER + ".")]


def retry_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    """The retry lines logged so far, parsed, each with its level."""
    found = []
    for record in ours(caplog):
        match = RETRY_LINE.match(record.getMessage())
        if match:
            found.append({**match.groupdict(), "level": record.levelname})
    return found


# -- circuits ------------------------------------------------------------------------------------


def test_opening_warns_and_closing_informs(
    s3: LocalS3, installed: Installed, log: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    _installation, client = installed()
    bucket = s3.create_bucket()

    def circuit_lines() -> list[tuple[str, str]]:
        return [
            (r.levelname, r.getMessage())
            for r in ours(log)
            if r.getMessage().startswith(f"circuit {CIRCUIT} ")
        ]

    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 4)
    assert circuit_lines() == []
    fail_calls(client, bucket, 1)
    [(level, opened)] = circuit_lines()
    assert level == "WARNING"
    assert "OPEN" in opened
    assert "after 5 consecutive failed calls" in opened
    assert "503 SlowDown" in opened  # the last error

    log.clear()
    clock.advance(60)
    fail_calls(client, bucket, 1)  # a failed probe opens it again: WARNING again
    assert [level for level, _ in circuit_lines()] == ["INFO", "WARNING"]
    assert "HALF_OPEN" in circuit_lines()[0][1]
    assert "OPEN again: a probe failed (503 SlowDown)" in circuit_lines()[1][1]

    log.clear()
    s3.clear_faults()
    clock.advance(60)
    client.head_bucket(Bucket=bucket)
    client.head_bucket(Bucket=bucket)
    lines = circuit_lines()
    assert [level for level, _ in lines] == ["INFO", "INFO"]
    assert "HALF_OPEN" in lines[0][1]
    assert "CLOSED" in lines[1][1]
    assert not [r for r in ours(log) if r.levelno >= logging.WARNING]


# -- retries -------------------------------------------------------------------------------------


def test_each_retry_is_logged_with_its_number_target_and_reason(
    s3: LocalS3, installed: Installed, log: pytest.LogCaptureFixture
) -> None:
    _installation, client = installed()
    bucket = s3.create_bucket()
    key = "dir/a b.txt"  # the key as the caller named it, not URL-encoded

    for fault in (INTERNAL_ERROR, SLOW_DOWN, TOO_MANY_REQUESTS):
        s3.inject(fault, times=1)
    put = client.put_object(Bucket=bucket, Key=key, Body=b"v")
    assert put["ResponseMetadata"]["RetryAttempts"] == 3
    lines = [r.getMessage() for r in ours(log) if r.getMessage().startswith("retry ")]
    assert lines == [
        f"retry 1 of s3 PutObject bucket={bucket} key={key} after 500 InternalError",
        f"retry 2 of s3 PutObject bucket={bucket} key={key} after 503 SlowDown",
        f"retry 3 of s3 PutObject bucket={bucket} key={key} after 429 TooManyRequests",
    ]
    assert {r.levelname for r in ours(log) if r.getMessage().startswith("retry ")} == {"INFO"}

    log.clear()
    s3.inject(SERVICE_UNAVAILABLE, times=1)
    s3.inject(REQUEST_TIMEOUT, times=1)
    client.list_buckets()  # names no bucket and no key
    assert [r.getMessage() for r in ours(log) if r.getMessage().startswith("retry ")] == [
        "retry 1 of s3 ListBuckets bucket=- key=- after 503 ServiceUnavailable",
        "retry 2 of s3 ListBuckets bucket=- key=- after 408 RequestTimeout",
    ]

    log.clear()
    with FaultInjector(client) as injector:
        injector.inject(ENDPOINT_CONNECTION_ERROR, times=None)
        with pytest.raises(BotoCoreError):
            client.get_object(Bucket=bucket, Key=key)
    assert [r.getMessage() for r in ours(log) if r.getMessage().startswith("retry ")] == [
        f"retry {n} of s3 GetObject bucket={bucket} key={key} after EndpointConnectionError"
        for n in (1, 2, 3)
    ]


HTTP_FAULTS = (
    INTERNAL_ERROR,
    SERVICE_UNAVAILABLE,
    SLOW_DOWN,
    TOO_MANY_REQUESTS,
    REQUEST_TIMEOUT,
    CLIENT_TIMEOUT,
)


def test_logged_retry_numbers_are_exactly_one_to_retry_attempts(
    s3: LocalS3, installed: Installed, log: pytest.LogCaptureFixture
) -> None:
    # The seed-003 trap: a log that says "attempt 4" for a call botocore reports as
    # retried twice, or that repeats a number, misleads whoever reads it at 3 a.m.
    rng = random.Random(3003)
    bucket = s3.create_bucket()
    injector = FaultInjector()
    client: Any = None
    key = "logs/k.txt"
    calls = {
        "GetObject": lambda: client.get_object(Bucket=bucket, Key=key),
        "PutObject": lambda: client.put_object(Bucket=bucket, Key=key, Body=b"v"),
        "HeadObject": lambda: client.head_object(Bucket=bucket, Key=key),
        "ListBuckets": lambda: client.list_buckets(),
    }
    seen: set[int] = set()
    connection_endings = 0
    for n in range(60):
        if n % 20 == 0:  # a fresh client keeps botocore's retry quota from running out
            _installation, client = installed(failure_threshold=1000)
            injector.install(client)
            client.put_object(Bucket=bucket, Key=key, Body=b"v")
        operation = rng.choice(sorted(calls))
        faults = rng.choice((0, 1, 1, 2, 3, 4))
        connection_ending = faults == 4 and rng.random() < 0.3
        for _ in range(faults):
            if connection_ending:
                injector.inject(rng.choice((ENDPOINT_CONNECTION_ERROR, READ_TIMEOUT)), times=1)
            else:
                s3.inject(rng.choice(HTTP_FAULTS), times=1)
        if faults < 4 and rng.random() < 0.2:
            s3.inject(ACCESS_DENIED, times=1)

        log.clear()
        try:
            made: int = metadata_of(calls[operation])["RetryAttempts"]
            assert made == min(faults, 3), (n, operation, faults)
        except BotoCoreError:
            assert connection_ending, (n, operation, faults)
            made = 3  # max_attempts - 1: every retry was made
            connection_endings += 1
        lines = retry_lines(log)
        assert [int(line["attempt"]) for line in lines] == list(range(1, made + 1)), (
            n,
            operation,
            faults,
        )
        for line in lines:
            assert (line["service"], line["operation"], line["level"]) == (
                "s3",
                operation,
                "INFO",
            )
            assert line["bucket"] == ("-" if operation == "ListBuckets" else bucket)
            assert line["key"] == ("-" if operation == "ListBuckets" else key)
        seen.add(made)
    assert seen == {0, 1, 2, 3}
    assert connection_endings > 0


# -- nothing secret ------------------------------------------------------------------------------

ACCESS_KEY = "AKIACANARY4Q7ZK2M9XP"
SECRET = "SECRETxyzCanary0u8f2Kq9Lw3Rt6Yb1Nv5Hs7Jd4"
BODY = b"BODY-CANARY-3f9a1c7e5b"
KEY = "private/KEY-CANARY-8d2e6b.txt"


@pytest.fixture
def canary_client(
    s3: LocalS3, clock: FakeClock, registry: CollectorRegistry
) -> Iterator[tuple[Any, Any]]:
    """``(installation, client)`` with distinctive credentials, installed as ``installed()`` is."""
    session = boto3.Session(
        region_name="us-east-1", aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET
    )
    installation = botocore_resilience.install(
        session, registry=registry, clock=clock, environ={}, jitter=lambda: 0.0
    )
    client = s3.client(session=session, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET)
    yield installation, client
    installation.uninstall()


def _raise(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("metrics backend exploded")


def test_no_credentials_signatures_or_bodies_in_logs_and_no_key_in_labels(
    s3: LocalS3,
    canary_client: tuple[Any, Any],
    registry: CollectorRegistry,
    clock: FakeClock,
    log: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installation, client = canary_client
    bucket = s3.create_bucket()

    # Retries of calls that carry the body both ways.
    s3.inject(INTERNAL_ERROR, times=2)
    client.put_object(Bucket=bucket, Key=KEY, Body=BODY)
    s3.inject(SLOW_DOWN, times=1)
    assert client.get_object(Bucket=bucket, Key=KEY)["Body"].read() == BODY
    # Error answers whose bodies are logged nowhere.
    s3.inject(HTTPFault(400, "InvalidRequest", BODY.decode()), times=1)
    with pytest.raises(ClientError):
        client.put_object(Bucket=bucket, Key=KEY, Body=BODY)
    # Connection errors (their messages hold the URL) and timeouts.
    with FaultInjector(client) as injector:
        injector.inject(READ_TIMEOUT, times=2)
        injector.inject(ENDPOINT_CONNECTION_ERROR, times=None)
        with pytest.raises(BotoCoreError):
            client.put_object(Bucket=bucket, Key=KEY, Body=BODY)
    # Internal errors, logged with their tracebacks, while botocore handles its own.
    monkeypatch.setattr(Metrics, "call_finished", _raise)
    monkeypatch.setattr(Metrics, "retry_made", _raise)
    s3.inject(INTERNAL_ERROR, times=1)
    client.put_object(Bucket=bucket, Key=KEY, Body=BODY)
    s3.stop()
    with pytest.raises(BotoCoreError):
        client.get_object(Bucket=bucket, Key=KEY)
    s3.start()
    monkeypatch.undo()
    client.head_bucket(Bucket=bucket)  # a success: the circuit starts counting from 0
    monkeypatch.setattr(logs, "_reported", set())
    # A circuit that opens, rejects, probes and closes.
    s3.inject(SLOW_DOWN, times=None)
    for _ in range(installation.settings.failure_threshold):
        with pytest.raises(ClientError):
            client.put_object(Bucket=bucket, Key=KEY, Body=BODY)
    with pytest.raises(CircuitBreakerOpen):
        client.get_object(Bucket=bucket, Key=KEY)
    s3.clear_faults()
    clock.advance(60)
    for _ in range(2):
        client.put_object(Bucket=bucket, Key=KEY, Body=BODY)
    assert installation.breakers()[CIRCUIT].state is CircuitState.CLOSED

    records = ours(log)
    # The scan below means something only if the lines it scans were logged.
    messages = [r.getMessage() for r in records]
    assert any(KEY in m and m.startswith("retry ") for m in messages)
    assert any(r.levelno == logging.WARNING and "OPEN" in r.getMessage() for r in records)
    assert any(r.exc_info for r in records)

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    forbidden = (SECRET, ACCESS_KEY, "Signature=", "AWS4-HMAC-SHA256 Credential", BODY.decode())
    for record in records:
        texts = (formatter.format(record), str(record.msg), repr(record.args))
        for text in texts:
            for secret in forbidden:
                assert secret not in text, (secret, record.getMessage())

    # No label of any series, in any family, holds the object key.
    labelled = [
        (sample.name, label_value)
        for family in registry.collect()
        for sample in family.samples
        for label_value in sample.labels.values()
    ]
    assert labelled  # the scan below has something to scan
    assert [item for item in labelled if "KEY-CANARY" in item[1] or KEY in item[1]] == []


# -- a logging handler that raises ---------------------------------------------------------------


class _ExplodingHandler(logging.Handler):
    """A handler whose sink is down: ``emit`` raises instead of calling ``handleError``."""

    def emit(self, record: logging.LogRecord) -> None:
        raise RuntimeError("log sink down")


def test_a_logging_handler_that_raises_never_breaks_or_changes_a_call(
    s3: LocalS3,
    installed: Installed,
    registry: CollectorRegistry,
    clock: FakeClock,
    log: pytest.LogCaptureFixture,
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    handler = _ExplodingHandler(logging.DEBUG)
    logging.getLogger(LOGGER).addHandler(handler)
    try:
        client.put_object(Bucket=bucket, Key="k", Body=b"v")
        s3.inject(INTERNAL_ERROR, times=2)  # two retries: two retry lines that raise
        made = metadata_of(lambda: client.get_object(Bucket=bucket, Key="k"))
        assert made["RetryAttempts"] == 2
        s3.inject(INTERNAL_ERROR, times=1)
        with pytest.raises(ClientError) as raised:
            client.get_object(Bucket=bucket, Key="missing")
        assert raised.value.response["Error"]["Code"] == "NoSuchKey"
        assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 1

        # The opening WARNING raises too: the fifth call still ends as itself.
        s3.inject(SLOW_DOWN, times=None)
        fail_calls(client, bucket, 5)
        assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN
        with pytest.raises(CircuitBreakerOpen):
            client.head_bucket(Bucket=bucket)
        s3.clear_faults()
        clock.advance(60)
        client.head_bucket(Bucket=bucket)
        client.head_bucket(Bucket=bucket)
        assert installation.breakers()[CIRCUIT].state is CircuitState.CLOSED
    finally:
        logging.getLogger(LOGGER).removeHandler(handler)

    # Metrics did not lose what logging failed to say: 2 + 1 + 5 x 3 retries.
    retried = {
        sample.labels["attempt"]: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "botocore_retry_attempts_total"
        and sample.labels["operation"] == "GetObject"
    }
    assert retried == {"1": 2, "2": 1}


def test_records_carry_structured_transition_and_retry(
    s3: LocalS3, installed: Installed, caplog: pytest.LogCaptureFixture
) -> None:
    from botocore_resilience import CircuitState
    from botocore_resilience.logs import Retry

    _installation, client = installed()
    bucket = s3.create_bucket()
    caplog.set_level(logging.INFO, logger="botocore_resilience")
    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 5)
    retries = [r.retry for r in caplog.records if hasattr(r, "retry")]
    assert [r.attempt for r in retries[:3]] == [1, 2, 3]
    assert retries[0] == Retry("s3", "ListObjectsV2", bucket, 1, "503 SlowDown")
    [opened] = [r.transition for r in caplog.records if hasattr(r, "transition")]
    assert (opened.circuit_name, opened.from_state, opened.to_state) == (
        CIRCUIT,
        CircuitState.CLOSED,
        CircuitState.OPEN,
    )
    assert opened.consecutive_failures == 5
