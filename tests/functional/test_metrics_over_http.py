"""The metrics over real HTTP, checked exactly against botocore's own numbers.

Every count here is compared with what botocore reports for the same call
(``ResponseMetadata["RetryAttempts"]``, ``["RetryQuotaReached"]``) or with what
the test made happen (faults injected, attempts sent). Time moves only on the
fake clock: a ``before-send`` hook advances it by a fixed step per attempt, and
botocore's backoff sleep advances it by the delay botocore chose, so durations
are exact sums, never wall-clock readings.
"""

from __future__ import annotations

import logging
import random
import socket
import urllib.request
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any, Callable, Optional

import botocore.endpoint
import pytest
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen, CircuitState, exposition, logs
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
    LocalS3,
)

from ._helpers import fail_calls, metadata_of

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"
OPERATIONS = "botocore_operations_total"
RETRIES = "botocore_retry_attempts_total"
DURATION = "botocore_operation_duration_seconds"
STATE = "botocore_circuit_breaker_state"
TRANSITIONS = "botocore_circuit_breaker_transitions_total"
QUOTA = "botocore_retry_quota_exhausted_total"


# -- reading the registry ----------------------------------------------------------------------


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value, 0 for a series that does not exist (yet)."""
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, ...], float]:
    """Every sample called ``name``, keyed by its label values in label-name order."""
    return {
        tuple(sample.labels[k] for k in sorted(sample.labels)): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def operations(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    """``{(operation, bucket, result): count}`` of every operations series (service is s3)."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == OPERATIONS:
                assert sample.labels["service"] == "s3"
                labels = sample.labels
                found[(labels["operation"], labels["bucket"], labels["result"])] = sample.value
    return found


def retries(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """``{(operation, attempt): count}`` of every retry series (service is s3)."""
    found = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == RETRIES:
                assert sample.labels["service"] == "s3"
                found[(sample.labels["operation"], sample.labels["attempt"])] = sample.value
    return found


# -- helpers -------------------------------------------------------------------------------------


class _ClockSleep:
    """Stands in for ``time`` in ``botocore.endpoint``: backoff moves the fake clock instead."""

    def __init__(self, real: Any, clock: FakeClock) -> None:
        self._real = real
        self._clock = clock
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._clock.advance(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def fresh_internal_error_log(monkeypatch: pytest.MonkeyPatch) -> None:
    # log_internal_error warns once per place per process: start this test with none reported.
    monkeypatch.setattr(logs, "_reported", set())


# -- 1. one count per logical call ---------------------------------------------------------------


def test_each_logical_call_counts_once_with_its_result_and_bucket(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry
) -> None:
    _installation, client = installed()
    bucket = s3.create_bucket()

    client.list_buckets()  # names no bucket: bucket=""
    client.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.inject(INTERNAL_ERROR, times=3)
    sent = s3.requests.total
    assert metadata_of(lambda: client.get_object(Bucket=bucket, Key="k"))["RetryAttempts"] == 3
    assert s3.requests.total == sent + 4  # four requests, one logical call
    with pytest.raises(ClientError, match="NoSuchKey"):
        client.get_object(Bucket=bucket, Key="missing")

    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 5)  # 20 attempts, 5 calls; the fifth opens the circuit
    s3.clear_faults()
    sent = s3.requests.total
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)
    with pytest.raises(CircuitBreakerOpen):
        client.list_buckets()
    assert s3.requests.total == sent

    assert operations(registry) == {
        ("ListBuckets", "", "success"): 1,
        ("PutObject", bucket, "success"): 1,
        ("GetObject", bucket, "success"): 1,
        ("GetObject", bucket, "error"): 1,
        ("ListObjectsV2", bucket, "error"): 5,
        ("HeadBucket", bucket, "circuit_open"): 1,
        ("ListBuckets", "", "circuit_open"): 1,
    }


# -- 2. retry counts add up to botocore's RetryAttempts -----------------------------------------

HTTP_FAULTS = (
    INTERNAL_ERROR,  # 500
    SERVICE_UNAVAILABLE,  # 503
    SLOW_DOWN,  # 503, throttling
    TOO_MANY_REQUESTS,  # 429, a gap the plugin fills
    REQUEST_TIMEOUT,  # 408, botocore retries the code
    CLIENT_TIMEOUT,  # 408, a gap the plugin fills
)
CONNECTION_FAULTS = (ENDPOINT_CONNECTION_ERROR, READ_TIMEOUT)
# How a call of the mix ends: a response after 0-3 faults (2xx or a 4xx answer), or four
# faults in a row (max_attempts), the last an HTTP error or a connection error.
ENDINGS = ("success", "success", "success", "success", "4xx", "exhausted", "connection")


def test_retry_counts_match_retry_attempts_over_a_random_mix(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry
) -> None:
    rng = random.Random(20240917)
    bucket = s3.create_bucket()
    injector = FaultInjector()
    client: Any = None
    calls = {
        "HeadBucket": lambda: client.head_bucket(Bucket=bucket),
        "GetObject": lambda: client.get_object(Bucket=bucket, Key="k"),
        "PutObject": lambda: client.put_object(Bucket=bucket, Key="k", Body=b"v"),
        "ListObjectsV2": lambda: client.list_objects_v2(Bucket=bucket),
        "ListBuckets": lambda: client.list_buckets(),
    }
    expected: Tally[tuple[str, str]] = Tally()
    reported_total = 0  # sum of RetryAttempts botocore reported
    connection_failures = 0  # calls that ended with a connection error: no RetryAttempts
    endings: Tally[str] = Tally()

    for n in range(80):
        if n % 20 == 0:
            # A fresh client every 20 calls keeps botocore's per-client retry quota
            # (500 tokens, 5-10 per retry) from running out and skipping retries.
            _installation, client = installed(failure_threshold=1000)
            injector.install(client)
            client.put_object(Bucket=bucket, Key="k", Body=b"v")
            before = retries(registry)
        operation = rng.choice(sorted(calls))
        ending = rng.choice(ENDINGS)
        faults = rng.randint(0, 3) if ending in ("success", "4xx") else 4
        # Connection faults are raised in-process before the request leaves, so they are
        # the first attempts; HTTP faults answer the attempts that reach the server.
        connection = sum(rng.random() < 0.2 for _ in range(faults))
        if ending == "connection":
            connection = faults
        elif ending == "exhausted":
            connection = min(connection, faults - 1)  # the last answer is an HTTP error
        for _ in range(connection):
            injector.inject(rng.choice(CONNECTION_FAULTS), times=1)
        for _ in range(faults - connection):
            s3.inject(rng.choice(HTTP_FAULTS), times=1)
        if ending == "4xx":
            s3.inject(ACCESS_DENIED, times=1)

        made: Optional[int]
        try:
            made = metadata_of(calls[operation])["RetryAttempts"]
            assert ending != "connection", (n, operation)
            reported_total += made
            assert made == min(faults, 3), (n, operation, ending, faults)
        except BotoCoreError:
            assert ending == "connection", (n, operation)
            made = None
            connection_failures += 1
        endings[ending] += 1
        assert (injector.faults, s3.faults) == ([], []), "every injected fault was an attempt"

        # The retries of this call, k of them, moved attempts "1".."k" by one each.
        k = 3 if made is None else made
        for attempt in range(1, k + 1):
            expected[(operation, str(attempt))] += 1
        after = retries(registry)
        delta = {
            key: after[key] - before.get(key, 0)
            for key in after
            if after[key] != before.get(key, 0)
        }
        assert delta == {(operation, str(a)): 1 for a in range(1, k + 1)}, (n, operation, k)
        before = after

    assert retries(registry) == dict(expected)
    # The contract's sentence, literally: increments add up to the sum of RetryAttempts
    # (plus max_attempts - 1 = 3 for each call that ended with a connection error).
    assert sum(retries(registry).values()) == reported_total + 3 * connection_failures
    # The seed gives every kind of ending, so the sums above mean something.
    assert set(endings) == {"success", "4xx", "exhausted", "connection"}, endings
    assert {attempt for _op, attempt in expected} == {"1", "2", "3"}


@pytest.mark.parametrize("max_attempts", [2, 4])
@pytest.mark.parametrize("how", ["server stopped", "read timeout"])
def test_retries_before_a_connection_error_are_counted(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry, how: str, max_attempts: int
) -> None:
    _installation, client = installed(max_attempts=max_attempts)
    bucket = s3.create_bucket()
    if how == "server stopped":
        s3.stop()
    else:
        FaultInjector(client).inject(READ_TIMEOUT, times=None)
    expected = EndpointConnectionError if how == "server stopped" else ReadTimeoutError
    with pytest.raises(expected):
        client.head_bucket(Bucket=bucket)
    assert retries(registry) == {("HeadBucket", str(a)): 1 for a in range(1, max_attempts)}
    assert operations(registry) == {("HeadBucket", bucket, "error"): 1}


# -- 3. duration: one exact sample per sent call ------------------------------------------------

STEP = 0.5  # seconds the fake clock moves per attempt sent (exact in binary floating point)


def test_duration_covers_every_attempt_and_backoff_exactly(
    s3: LocalS3,
    installed: Installed,
    registry: CollectorRegistry,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installation, client = installed(failure_threshold=2)
    bucket = s3.create_bucket()
    sleeper = _ClockSleep(botocore.endpoint.time, clock)
    monkeypatch.setattr(botocore.endpoint, "time", sleeper)
    attempts = 0

    def one_attempt(**kwargs: Any) -> None:
        nonlocal attempts
        attempts += 1
        clock.advance(STEP)

    client.meta.events.register("before-send.s3", one_attempt)
    labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket}

    def observed() -> tuple[float, float]:
        return value(registry, DURATION + "_count", **labels), value(
            registry, DURATION + "_sum", **labels
        )

    client.head_bucket(Bucket=bucket)  # 1 attempt
    assert observed() == (1, STEP)

    s3.inject(INTERNAL_ERROR, times=2)
    client.head_bucket(Bucket=bucket)  # 3 attempts, 2 backoffs
    s3.inject(TOO_MANY_REQUESTS, times=1)
    client.head_bucket(Bucket=bucket)  # 2 attempts, our own backoff (0 with jitter 0)
    s3.inject(INTERNAL_ERROR, times=None)
    with pytest.raises(ClientError):
        client.head_bucket(Bucket=bucket)  # 4 attempts, 3 backoffs
    s3.clear_faults()
    s3.stop()
    with pytest.raises(EndpointConnectionError):
        client.head_bucket(Bucket=bucket)  # 4 attempts (refused), 3 backoffs; opens the circuit
    assert attempts == 1 + 3 + 2 + 4 + 4
    assert len(sleeper.slept) == 2 + 1 + 3 + 3
    assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN

    count, total = observed()
    assert count == 5
    assert total == pytest.approx(attempts * STEP + sum(sleeper.slept), abs=1e-9)
    assert sum(sleeper.slept) > 0  # botocore's backoff was really in there

    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)  # rejected: counted, never timed
    assert observed() == (count, total)
    assert value(registry, OPERATIONS, result="circuit_open", **labels) == 1
    assert value(registry, DURATION + "_bucket", le="+Inf", **labels) == 5


def test_a_call_that_fails_before_sending_has_no_duration_sample(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry
) -> None:
    _installation, client = installed()
    bucket = s3.create_bucket()

    def no_credentials(**kwargs: Any) -> None:
        raise NoCredentialsError()

    client.meta.events.register_first("before-sign.s3", no_credentials)
    with pytest.raises(NoCredentialsError):
        client.head_bucket(Bucket=bucket)
    assert s3.requests.total == 0
    labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket}
    assert value(registry, DURATION + "_count", **labels) == 0


# -- 4. the state gauge and transitions follow the breaker --------------------------------------

GAUGE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}  # contract §6


def test_state_gauge_and_transitions_follow_the_breaker(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry, clock: FakeClock
) -> None:
    installation, client = installed()
    bucket = s3.create_bucket()
    moves: Tally[tuple[str, str]] = Tally()

    def at_rest(state: CircuitState) -> None:
        breaker = installation.breakers()[CIRCUIT]
        assert breaker.state is state
        assert samples(registry, STATE) == {(CIRCUIT,): GAUGE[state]}
        counted = {
            (from_state, to): n
            for (name, from_state, to), n in samples(registry, TRANSITIONS).items()
            if name == CIRCUIT
        }
        assert counted == dict(moves)

    client.head_bucket(Bucket=bucket)
    at_rest(CircuitState.CLOSED)  # gauge 0 from the first call, no transitions

    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 4)
    at_rest(CircuitState.CLOSED)
    fail_calls(client, bucket, 1)
    moves["closed", "open"] += 1
    at_rest(CircuitState.OPEN)
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)
    at_rest(CircuitState.OPEN)

    clock.advance(60)
    fail_calls(client, bucket, 1)  # the probe fails
    moves["open", "half_open"] += 1
    moves["half_open", "open"] += 1
    at_rest(CircuitState.OPEN)

    s3.clear_faults()
    clock.advance(60)
    client.head_bucket(Bucket=bucket)  # first good probe
    moves["open", "half_open"] += 1
    at_rest(CircuitState.HALF_OPEN)
    client.head_bucket(Bucket=bucket)  # success_threshold = 2
    moves["half_open", "closed"] += 1
    at_rest(CircuitState.CLOSED)


# -- 5. retry quota -----------------------------------------------------------------------------


def test_quota_exhaustion_counts_exactly_the_calls_botocore_flags(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry
) -> None:
    # Standard mode, 3 attempts: each failing call spends two retries of botocore's
    # per-client quota (500 tokens) until it runs out. breaker=off keeps every call going.
    _installation, client = installed(
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}), breaker="off"
    )
    bucket = s3.create_bucket()
    injector = FaultInjector(client)  # in-process 500s: 60 calls x 3 attempts stay fast
    injector.inject(INTERNAL_ERROR, times=None)
    quota = {"service": "s3", "operation": "HeadBucket"}
    flagged: list[int] = []
    reported_total = 0
    for n in range(60):
        before = value(registry, QUOTA, **quota)
        metadata = metadata_of(lambda: client.head_bucket(Bucket=bucket))
        reached = bool(metadata.get("RetryQuotaReached"))
        assert value(registry, QUOTA, **quota) - before == (1 if reached else 0), n
        if reached:
            flagged.append(n)
        reported_total += metadata["RetryAttempts"]

    # The quota runs out part-way and stays out: a suffix of the calls is flagged.
    assert flagged, "the quota never ran out"
    assert flagged == list(range(flagged[0], 60))
    assert flagged[0] > 0
    assert value(registry, QUOTA, **quota) == len(flagged)
    assert sum(retries(registry).values()) == reported_total

    injector.clear()
    assert "RetryQuotaReached" not in metadata_of(lambda: client.head_bucket(Bucket=bucket))
    assert value(registry, QUOTA, **quota) == len(flagged)


# -- 6. a failure inside metrics never breaks a call ---------------------------------------------


def exercise(s3: LocalS3, installation: Any, client: Any) -> None:
    """Calls that must behave exactly as without the plugin's metrics, and a breaker that
    must still open after 5 failed calls."""
    bucket = s3.create_bucket()
    client.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3.inject(INTERNAL_ERROR, times=2)
    assert metadata_of(lambda: client.get_object(Bucket=bucket, Key="k"))["RetryAttempts"] == 2
    with pytest.raises(ClientError) as raised:
        client.get_object(Bucket=bucket, Key="missing")
    assert raised.value.response["Error"]["Code"] == "NoSuchKey"

    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, bucket, 5)
    breaker = installation.breakers()[CIRCUIT]
    assert breaker.state is CircuitState.OPEN
    sent = s3.requests.total
    with pytest.raises(CircuitBreakerOpen):
        client.head_bucket(Bucket=bucket)
    assert s3.requests.total == sent
    s3.clear_faults()


def internal_error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "botocore_resilience" and "internal error" in r.getMessage()
    ]


def assert_warned_once_per_place(records: list[logging.LogRecord]) -> None:
    assert records, "the internal errors were not logged"
    by_place: dict[str, list[logging.LogRecord]] = {}
    for record in records:
        by_place.setdefault(record.getMessage(), []).append(record)
    for place, logged in by_place.items():
        levels = [r.levelno for r in logged]
        assert levels == [logging.WARNING] + [logging.DEBUG] * (len(levels) - 1), place
        assert logged[0].exc_info is not None  # the first one says what broke
    assert any(len(logged) > 1 for logged in by_place.values())  # later ones went to DEBUG


def _raise(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("metrics backend exploded")


@pytest.mark.usefixtures("fresh_internal_error_log")
def test_metrics_methods_that_raise_never_break_a_call(
    s3: LocalS3,
    installed: Installed,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for method in (
        "call_finished",
        "retry_made",
        "quota_exhausted",
        "circuit_added",
        "transition",
        "circuit_removed",
    ):
        monkeypatch.setattr(Metrics, method, _raise)
    caplog.set_level(logging.DEBUG, logger="botocore_resilience")
    installation, client = installed()
    exercise(s3, installation, client)
    assert_warned_once_per_place(internal_error_records(caplog))


@pytest.mark.usefixtures("fresh_internal_error_log")
def test_label_children_that_raise_never_break_a_call(
    s3: LocalS3,
    installed: Installed,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    installation, client = installed()  # families registered before the children break
    monkeypatch.setattr(Counter, "inc", _raise)
    monkeypatch.setattr(Histogram, "observe", _raise)
    monkeypatch.setattr(Gauge, "set", _raise)
    caplog.set_level(logging.DEBUG, logger="botocore_resilience")
    exercise(s3, installation, client)
    assert_warned_once_per_place(internal_error_records(caplog))


class _BrokenRegistry:
    """Not a CollectorRegistry: every registration fails."""

    def register(self, collector: Any) -> None:
        raise RuntimeError("registry is broken")

    def unregister(self, collector: Any) -> None:
        raise RuntimeError("registry is broken")


def test_a_broken_registry_never_breaks_install_or_calls(
    s3: LocalS3, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="botocore_resilience")
    session = s3.session()
    installation = botocore_resilience.install(
        session, registry=_BrokenRegistry(), clock=clock, environ={}, jitter=lambda: 0.0
    )
    try:
        warnings = [
            r
            for r in caplog.records
            if r.name == "botocore_resilience" and r.levelno == logging.WARNING
        ]
        assert [r.getMessage() for r in warnings] == ["metrics disabled"]
        exercise(s3, installation, s3.client(session=session))
    finally:
        installation.uninstall()


# -- 7. seed names, and installing twice ---------------------------------------------------------


def test_namespace_s3_reproduces_the_seed_names(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry, clock: FakeClock
) -> None:
    _installation, client = installed(metrics_namespace="s3")
    bucket = s3.create_bucket()
    s3.inject(INTERNAL_ERROR, times=1)
    client.head_bucket(Bucket=bucket)
    labels = {"service": "s3", "operation": "HeadBucket"}
    assert value(registry, "s3_operations_total", bucket=bucket, result="success", **labels) == 1
    assert value(registry, "s3_operation_duration_seconds_count", bucket=bucket, **labels) == 1
    assert value(registry, "s3_retry_attempts_total", attempt="1", **labels) == 1
    assert value(registry, "s3_circuit_breaker_state", circuit_name=CIRCUIT) == 0
    families = {family.name for family in registry.collect()}
    assert families == {
        "s3_operations",
        "s3_operation_duration_seconds",
        "s3_circuit_breaker_state",
        "s3_circuit_breaker_transitions",
        "s3_retry_attempts",
        "s3_retry_quota_exhausted",
    }


def test_installing_twice_on_one_registry_never_raises_or_double_counts(
    s3: LocalS3, installed: Installed, registry: CollectorRegistry, clock: FakeClock
) -> None:
    _first, client = installed()
    bucket = s3.create_bucket()
    session = s3.session()
    again: dict[str, Any] = {
        "registry": registry,
        "clock": clock,
        "environ": {},
        "jitter": lambda: 0.0,
    }
    # The same session twice, then a client of it on its own: one set of handlers each time.
    botocore_resilience.install(session, **again)
    botocore_resilience.install(session, **again)
    other = s3.client(session=session)
    second = botocore_resilience.install(other, **again)
    try:
        s3.inject(INTERNAL_ERROR, times=1)
        client.head_bucket(Bucket=bucket)
        s3.inject(INTERNAL_ERROR, times=1)
        other.head_bucket(Bucket=bucket)
        assert operations(registry) == {("HeadBucket", bucket, "success"): 2}
        assert retries(registry) == {("HeadBucket", "1"): 2}
        labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket}
        assert value(registry, DURATION + "_count", **labels) == 2
    finally:
        second.uninstall()
        botocore_resilience.uninstall(session)


# -- 8. the real /metrics endpoint ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def forget_metrics_server() -> None:
    if not exposition.stop_metrics_server():
        exposition._running = None  # old prometheus-client: cannot stop; let a new one start


@pytest.fixture
def metrics_port() -> Iterator[int]:
    forget_metrics_server()
    yield free_port()
    forget_metrics_server()


def test_scrape_the_metrics_endpoint(s3: LocalS3, installed: Installed, metrics_port: int) -> None:
    _installation, client = installed(metrics_port=metrics_port, metrics_addr="127.0.0.1")
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=2)
    client.list_objects_v2(Bucket=bucket)

    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    families = {family.name: family for family in text_string_to_metric_families(text)}

    assert {
        name: families[name].type
        for name in (
            "botocore_operations",
            "botocore_operation_duration_seconds",
            "botocore_circuit_breaker_state",
            "botocore_circuit_breaker_transitions",
            "botocore_retry_attempts",
            "botocore_retry_quota_exhausted",
        )
    } == {
        "botocore_operations": "counter",
        "botocore_operation_duration_seconds": "histogram",
        "botocore_circuit_breaker_state": "gauge",
        "botocore_circuit_breaker_transitions": "counter",
        "botocore_retry_attempts": "counter",
        "botocore_retry_quota_exhausted": "counter",
    }
    scraped = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }

    def sample(name: str, **labels: str) -> float:
        return scraped[(name, tuple(sorted(labels.items())))]

    op = {"service": "s3", "operation": "ListObjectsV2"}
    assert sample("botocore_operations_total", bucket=bucket, result="success", **op) == 1
    assert sample("botocore_retry_attempts_total", attempt="1", **op) == 1
    assert sample("botocore_retry_attempts_total", attempt="2", **op) == 1
    assert sample("botocore_operation_duration_seconds_count", bucket=bucket, **op) == 1
    assert sample("botocore_circuit_breaker_state", circuit_name=CIRCUIT) == 0
