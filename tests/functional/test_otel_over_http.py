"""Metrics through OpenTelemetry over real HTTP: the same numbers as the Prometheus families.

Each comparison test installs with ``metrics="otel"`` and hands every event to *both*
sinks (the OpenTelemetry one, read by the SDK's ``InMemoryMetricReader``, and the
Prometheus one on a fresh registry), then runs real calls against the local S3 with
faults injected at the HTTP layer, and checks that every family's points equal the
Prometheus samples, and that both equal what botocore reported. Time moves only on the
fake clock, so durations are exact.

Skipped without ``opentelemetry-sdk`` (the ``test`` extra installs it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import accumulate
from typing import Any, Callable

import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry

pytest.importorskip("opentelemetry.sdk.metrics")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    MetricExporter,
    PeriodicExportingMetricReader,
)

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen, CircuitState, logs, otel_metrics
from botocore_resilience.breaker import Transition
from botocore_resilience.metrics import metrics_for
from botocore_resilience.testing import (
    ACCESS_DENIED,
    CLIENT_TIMEOUT,
    INTERNAL_ERROR,
    SLOW_DOWN,
    FakeClock,
    LocalS3,
)

from ._helpers import fail_calls, metadata_of

Installed = Callable[..., "tuple[Any, Any]"]
CIRCUIT = "s3/us-east-1"

# The contract's names, units and attribute names, per family: (OpenTelemetry, Prometheus).
FAMILIES = {
    "operations": ("botocore.operations", "botocore_operations_total"),
    "duration": ("botocore.operation.duration", "botocore_operation_duration_seconds"),
    "state": ("botocore.circuit_breaker.state", "botocore_circuit_breaker_state"),
    "transitions": (
        "botocore.circuit_breaker.transitions",
        "botocore_circuit_breaker_transitions_total",
    ),
    "retries": ("botocore.retry.attempts", "botocore_retry_attempts_total"),
    "quota": ("botocore.retry.quota_exhausted", "botocore_retry_quota_exhausted_total"),
}
ATTRIBUTES = {
    "operations": ("service", "operation", "bucket", "result"),
    "duration": ("service", "operation", "bucket"),
    "state": ("circuit_name",),
    "transitions": ("circuit_name", "from_state", "to_state"),
    "retries": ("service", "operation", "attempt"),
    "quota": ("service", "operation"),
}
UNITS = {
    "operations": "{call}",
    "duration": "s",
    "state": "{state}",
    "transitions": "{transition}",
    "retries": "{retry}",
    "quota": "{call}",
}


class BothSinks:
    """A metrics sink that hands every event to two sinks: the same calls reach both."""

    def __init__(self, *sinks: Any) -> None:
        self.sinks = sinks

    def call_finished(self, *args: Any) -> None:
        for sink in self.sinks:
            sink.call_finished(*args)

    def retry_made(self, *args: Any) -> None:
        for sink in self.sinks:
            sink.retry_made(*args)

    def quota_exhausted(self, *args: Any) -> None:
        for sink in self.sinks:
            sink.quota_exhausted(*args)

    def circuit_added(self, *args: Any) -> None:
        for sink in self.sinks:
            sink.circuit_added(*args)

    def transition(self, transition: Transition) -> None:
        for sink in self.sinks:
            sink.transition(transition)

    def circuit_removed(self, *args: Any) -> None:
        for sink in self.sinks:
            sink.circuit_removed(*args)


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def both(
    monkeypatch: pytest.MonkeyPatch, registry: CollectorRegistry, provider: MeterProvider
) -> MeterProvider:
    """``installed(metrics="otel", meter_provider=both)`` feeds both sinks the same calls."""
    real = otel_metrics.otel_metrics_for

    def both_sinks(meter_provider: Any, namespace: str, *, max_buckets: int) -> BothSinks:
        assert meter_provider is provider
        return BothSinks(
            real(meter_provider, namespace, max_buckets=max_buckets),
            metrics_for(registry, namespace, max_buckets=max_buckets),
        )

    monkeypatch.setattr(otel_metrics, "otel_metrics_for", both_sinks)
    return provider


# -- reading both sides into one shape -----------------------------------------------------------

Points = dict[str, dict[tuple[str, ...], Any]]


def otel_points(reader: InMemoryMetricReader) -> tuple[Points, dict[str, str]]:
    """``({family: {attribute values: value}}, {family: unit})`` from the SDK's reader.

    Histogram values are ``(count, sum, cumulative bucket counts)``.
    """
    by_name = {otel_name: family for family, (otel_name, _prom) in FAMILIES.items()}
    points: Points = {family: {} for family in FAMILIES}
    units: dict[str, str] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name != "botocore_resilience":
                # Newer SDKs also report on themselves (scope "opentelemetry-sdk").
                continue
            assert scope_metrics.scope.version == botocore_resilience.__version__
            for metric in scope_metrics.metrics:
                family = by_name[metric.name]
                units[family] = metric.unit
                for point in metric.data.data_points:
                    assert tuple(point.attributes) == ATTRIBUTES[family], metric.name
                    key = tuple(str(v) for v in point.attributes.values())
                    if family == "duration":
                        assert tuple(point.explicit_bounds) == otel_metrics.DURATION_BUCKETS
                        cumulative = tuple(float(c) for c in accumulate(point.bucket_counts))
                        points[family][key] = (float(point.count), point.sum, cumulative)
                    else:
                        points[family][key] = float(point.value)
    return points, units


def prometheus_points(registry: CollectorRegistry) -> Points:
    """The same shape from the Prometheus registry.

    A histogram series that never observed anything (a label set whose only calls were
    rejected before sending) is left out: the OpenTelemetry SDK has no point for it.
    """
    by_name = {prom: family for family, (_otel, prom) in FAMILIES.items()}
    points: Points = {family: {} for family in FAMILIES}
    histograms: dict[tuple[str, ...], dict[str, Any]] = {}
    for metric in registry.collect():
        family = by_name.get(metric.name) or by_name.get(metric.name + "_total")
        if family is None:
            continue
        for sample in metric.samples:
            labels = sample.labels
            if family == "duration":
                key = tuple(labels[name] for name in ATTRIBUTES[family])
                one = histograms.setdefault(key, {"buckets": []})
                if sample.name.endswith("_bucket"):
                    one["buckets"].append(sample.value)
                elif sample.name.endswith("_count"):
                    one["count"] = sample.value
                elif sample.name.endswith("_sum"):
                    one["sum"] = sample.value
            elif not sample.name.endswith("_created"):
                assert set(labels) == set(ATTRIBUTES[family]), sample.name
                key = tuple(labels[name] for name in ATTRIBUTES[family])
                points[family][key] = sample.value
    for key, one in histograms.items():
        if one["count"]:
            points["duration"][key] = (one["count"], one["sum"], tuple(one["buckets"]))
    return points


def assert_same_points(reader: InMemoryMetricReader, registry: CollectorRegistry) -> Points:
    otel, units = otel_points(reader)
    assert otel["operations"], "nothing was recorded: the comparison would be empty"
    assert otel == prometheus_points(registry)
    for family, unit in units.items():
        assert unit == UNITS[family], family
    return otel


# -- the same calls, both sinks ------------------------------------------------------------------


def test_every_family_equals_the_prometheus_one_over_a_mixed_workload(
    s3: LocalS3,
    installed: Installed,
    both: MeterProvider,
    reader: InMemoryMetricReader,
    registry: CollectorRegistry,
    clock: FakeClock,
) -> None:
    installation, client = installed(
        metrics="otel", meter_provider=both, failure_threshold=2, recovery_timeout=30
    )
    photos, logs_bucket = s3.create_bucket(), s3.create_bucket()
    reported_retries = 0

    def call(make: Callable[[], Any]) -> None:
        nonlocal reported_retries
        clock.advance(0.01)  # every call takes a little (fake) time
        reported_retries += metadata_of(make)["RetryAttempts"]

    # Successes, service errors, and retries botocore makes and the plugin adds.
    call(lambda: client.put_object(Bucket=photos, Key="a.jpg", Body=b"x"))
    call(lambda: client.get_object(Bucket=photos, Key="a.jpg"))
    call(lambda: client.get_object(Bucket=photos, Key="missing"))  # NoSuchKey: a success
    s3.inject(SLOW_DOWN, times=2)
    call(lambda: client.list_objects_v2(Bucket=logs_bucket))  # two retries by botocore
    s3.inject(CLIENT_TIMEOUT, times=1)
    call(lambda: client.head_bucket(Bucket=logs_bucket))  # a bare 408: retried by the plugin
    s3.inject(ACCESS_DENIED, times=1)
    call(lambda: client.list_objects_v2(Bucket=photos))
    call(lambda: client.list_buckets())
    assert reported_retries == 3

    # An outage: two failed calls open the circuit, the next is rejected before sending.
    s3.inject(SLOW_DOWN, times=None)
    fail_calls(client, logs_bucket, 2)
    assert installation.breakers()[CIRCUIT].state is CircuitState.OPEN
    sent = s3.requests.total
    with pytest.raises(CircuitBreakerOpen):
        client.get_object(Bucket=photos, Key="a.jpg")
    assert s3.requests.total == sent
    assert_same_points(reader, registry)  # mid-outage too: the gauge says open on both

    # Recovery: two good probes close it.
    s3.clear_faults()
    clock.advance(31)
    call(lambda: client.head_bucket(Bucket=photos))
    call(lambda: client.head_bucket(Bucket=photos))
    assert installation.breakers()[CIRCUIT].state is CircuitState.CLOSED

    points = assert_same_points(reader, registry)
    # And both say what happened, not merely the same thing.
    assert points["operations"][("s3", "GetObject", photos, "circuit_open")] == 1
    assert points["operations"][("s3", "ListObjectsV2", logs_bucket, "error")] == 2
    assert points["operations"][("s3", "ListObjectsV2", photos, "error")] == 1
    assert points["operations"][("s3", "GetObject", photos, "success")] == 1
    assert points["operations"][("s3", "GetObject", photos, "error")] == 1  # NoSuchKey
    assert points["state"] == {(CIRCUIT,): 0.0}
    assert points["transitions"] == {
        (CIRCUIT, "closed", "open"): 1.0,
        (CIRCUIT, "open", "half_open"): 1.0,
        (CIRCUIT, "half_open", "closed"): 1.0,
    }
    # Retries: the three above, and three for each of the two failed outage calls.
    assert sum(points["retries"].values()) == reported_retries + 2 * 3
    assert points["retries"][("s3", "HeadBucket", "1")] == 1
    # A call that was never sent has no duration; every other call has exactly one.
    assert ("s3", "GetObject", photos) in points["duration"]
    calls_sent = sum(
        v for (_s, _o, _b, result), v in points["operations"].items() if result != "circuit_open"
    )
    assert sum(count for count, _sum, _buckets in points["duration"].values()) == calls_sent


def test_quota_exhaustion_and_retries_equal_botocores_numbers(
    s3: LocalS3,
    installed: Installed,
    both: MeterProvider,
    reader: InMemoryMetricReader,
    registry: CollectorRegistry,
) -> None:
    # Standard mode, 3 attempts, 500s from the server: each call spends two retries of
    # botocore's per-client quota (500 tokens) until it runs out. breaker=off keeps every
    # call going.
    from botocore.config import Config

    _installation, client = installed(
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
        breaker="off",
        metrics="otel",
        meter_provider=both,
    )
    bucket = s3.create_bucket()
    s3.inject(INTERNAL_ERROR, times=None)
    flagged = 0
    reported = 0
    for _ in range(60):
        metadata = metadata_of(lambda: client.head_bucket(Bucket=bucket))
        flagged += bool(metadata.get("RetryQuotaReached"))
        reported += metadata["RetryAttempts"]

    points = assert_same_points(reader, registry)
    assert flagged > 0, "the quota never ran out"
    assert points["quota"] == {("s3", "HeadBucket"): flagged}
    assert sum(points["retries"].values()) == reported
    assert points["operations"] == {("s3", "HeadBucket", bucket, "error"): 60.0}


def test_the_otel_sink_alone_records_through_the_given_provider(
    s3: LocalS3, installed: Installed, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    # No Prometheus sink here: metrics="otel" records only through OpenTelemetry.
    registry = CollectorRegistry()
    _installation, client = installed(metrics="otel", meter_provider=provider)
    bucket = s3.create_bucket()
    s3.inject(SLOW_DOWN, times=1)
    assert metadata_of(lambda: client.list_objects_v2(Bucket=bucket))["RetryAttempts"] == 1

    points, units = otel_points(reader)
    assert points["operations"] == {("s3", "ListObjectsV2", bucket, "success"): 1.0}
    assert points["retries"] == {("s3", "ListObjectsV2", "1"): 1.0}
    assert units["duration"] == "s"
    assert list(registry.collect()) == []


def test_a_namespace_prefixes_every_instrument(
    s3: LocalS3, installed: Installed, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    _installation, client = installed(
        metrics="otel", meter_provider=provider, metrics_namespace="s3"
    )
    client.list_buckets()
    names = {
        metric.name
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert names == {"s3.operations", "s3.operation.duration", "s3.circuit_breaker.state"}


# -- failures in OpenTelemetry never break a call ------------------------------------------------


class RaisingExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.exports = 0

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        self.exports += 1
        raise RuntimeError("the collector is down")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


class Raising:
    """An instrument, meter and provider whose every method raises."""

    def __getattr__(self, name: str) -> Any:
        def boom(*args: Any, **kwargs: Any) -> Any:
            if name in ("get_meter",) or name.startswith("create_"):
                return Raising()
            raise RuntimeError(f"broken OpenTelemetry: {name}")

        return boom


@pytest.fixture
def fresh_internal_error_log(monkeypatch: pytest.MonkeyPatch) -> None:
    # log_internal_error warns once per place per process: start with none reported.
    monkeypatch.setattr(logs, "_reported", set())


def test_a_raising_exporter_never_breaks_a_call(s3: LocalS3, installed: Installed) -> None:
    exporter = RaisingExporter()
    # An interval far beyond the test: exports happen only when flushed below.
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])
    try:
        _installation, client = installed(metrics="otel", meter_provider=provider)
        bucket = s3.create_bucket()
        for _ in range(3):
            s3.inject(SLOW_DOWN, times=1)
            assert metadata_of(lambda: client.list_objects_v2(Bucket=bucket))["RetryAttempts"] == 1
            provider.force_flush()
        assert exporter.exports >= 3
    finally:
        provider.shutdown()


def test_instruments_that_raise_never_break_a_call(
    s3: LocalS3,
    installed: Installed,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    fresh_internal_error_log: None,
) -> None:
    installation, client = installed(
        metrics="otel", meter_provider=Raising(), failure_threshold=1, recovery_timeout=5
    )
    bucket = s3.create_bucket()
    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        s3.inject(CLIENT_TIMEOUT, times=1)
        assert metadata_of(lambda: client.head_bucket(Bucket=bucket))["RetryAttempts"] == 1
        s3.inject(SLOW_DOWN, times=None)
        with pytest.raises(ClientError):
            client.list_objects_v2(Bucket=bucket)
        with pytest.raises(CircuitBreakerOpen):
            client.list_objects_v2(Bucket=bucket)
        s3.clear_faults()
        clock.advance(6)
        client.list_objects_v2(Bucket=bucket)
    assert installation.breakers()[CIRCUIT].state is CircuitState.HALF_OPEN
    assert any("metrics" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


def test_a_provider_that_cannot_make_a_meter_never_breaks_install(
    s3: LocalS3, installed: Installed, caplog: pytest.LogCaptureFixture
) -> None:
    class NoMeters:
        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no meters today")

    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        _installation, client = installed(metrics="otel", meter_provider=NoMeters())
    bucket = s3.create_bucket()
    assert metadata_of(lambda: client.list_objects_v2(Bucket=bucket))["RetryAttempts"] == 0
    assert any("metrics disabled" in r.getMessage() for r in caplog.records)


# -- the global provider ---------------------------------------------------------------------------


def test_without_a_provider_the_global_one_is_used(
    s3: LocalS3, installed: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(otel_metrics.otel, "get_meter_provider", lambda: provider)
    try:
        _installation, client = installed(metrics="otel")
        client.list_buckets()
        points, _units = otel_points(reader)
        assert points["operations"] == {("s3", "ListBuckets", "", "success"): 1.0}
    finally:
        provider.shutdown()


def test_install_global_takes_a_meter_provider(
    s3: LocalS3, provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    botocore_resilience.install_global(metrics="otel", meter_provider=provider, environ={})
    try:
        s3.client().list_buckets()
    finally:
        botocore_resilience.uninstall_global()
    points, _units = otel_points(reader)
    assert points["operations"] == {("s3", "ListBuckets", "", "success"): 1.0}
