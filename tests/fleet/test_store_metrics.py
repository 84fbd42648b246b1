"""The state store's two metric families, read where a user reads them, over one outage of a
real ``redis-server``: up, down (and the error counted), up again; through Prometheus, and
through OpenTelemetry with ``metrics="otel"`` (where nothing goes to prometheus-client)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Optional

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from botocore_resilience.runtime import Runtime, build_runtime
from botocore_resilience.store import ERROR_KINDS
from botocore_resilience.store.wiring import store_for

from .redis_servers import RedisServer
from .waits import wait_until

DEADLINE = 30.0


class _Readings:
    """The store families as one sink exports them: ``up`` and ``errors`` by kind."""

    def __init__(self, sink: str) -> None:
        self.sink = sink
        self.registry = CollectorRegistry()
        self.provider: Any = None
        if sink == "otel":
            pytest.importorskip("opentelemetry.sdk.metrics")
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            self.reader = InMemoryMetricReader()
            self.provider = MeterProvider(metric_readers=[self.reader])

    def up(self) -> Optional[float]:
        if self.sink == "prometheus":
            return self.registry.get_sample_value("botocore_state_store_up", {"backend": "redis"})
        points = self._points("botocore.state_store.up")
        return points.get((("backend", "redis"),))

    def errors(self) -> dict[str, Optional[float]]:
        if self.sink == "prometheus":
            return {
                kind: self.registry.get_sample_value(
                    "botocore_state_store_errors_total", {"error": kind}
                )
                for kind in ERROR_KINDS
            }
        points = self._points("botocore.state_store.errors")
        return {kind: points.get((("error", kind),)) for kind in ERROR_KINDS}

    def _points(self, name: str) -> dict[tuple[tuple[str, Any], ...], float]:
        data: Any = self.reader.get_metrics_data()
        return {
            tuple(sorted((point.attributes or {}).items())): point.value
            for resource in (data.resource_metrics if data is not None else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        }


def _runtime(server: RedisServer, readings: _Readings) -> Runtime:
    return build_runtime(
        {},
        registry=readings.registry,
        meter_provider=readings.provider,
        metrics=readings.sink,
        state_url=server.url,
        state_timeout=2.0,
    )


@pytest.fixture(params=["prometheus", "otel"])
def readings(request: pytest.FixtureRequest) -> _Readings:
    return _Readings(request.param)


@pytest.fixture
def runtime(redis_server: RedisServer, readings: _Readings) -> Iterator[Runtime]:
    built = _runtime(redis_server, readings)
    yield built
    store_for(built.settings).close()


def test_the_store_families_follow_an_outage_of_the_store(
    redis_server: RedisServer, readings: _Readings, runtime: Runtime
) -> None:
    circuits = runtime.circuits
    assert circuits is not None
    # A circuit's first use reads the fleet's state: the store is in use.
    assert circuits.breaker_for("s3", "us-east-1", "GetObject", "").acquire() is not None
    assert readings.up() == 1
    assert readings.errors() == dict.fromkeys(ERROR_KINDS, 0)  # every series, from the start

    redis_server.kill()
    # Another circuit's first use finds the store gone; the call still goes ahead.
    assert circuits.breaker_for("s3", "eu-west-1", "GetObject", "").acquire() is not None
    wait_until(lambda: readings.up() == 0, "up to read 0 while the store is down")
    errors = readings.errors()
    # Each operation the outage failed (the call's, and the subscription's read when it
    # noticed first or at the same moment): at least one, all of them "connection".
    assert (errors["connection"] or 0) >= 1, errors
    assert [errors[kind] for kind in ("timeout", "response", "other")] == [0, 0, 0], errors

    redis_server.start()  # the same port: the process rejoins
    wait_until(lambda: readings.up() == 1, "up to read 1 once the store answers again")


def test_with_metrics_otel_nothing_goes_to_prometheus_client(redis_server: RedisServer) -> None:
    readings = _Readings("otel")
    runtime = _runtime(redis_server, readings)
    try:
        assert runtime.circuits is not None
        runtime.circuits.breaker_for("s3", "us-east-1", "GetObject", "").acquire()
        assert readings.up() == 1
        for registry in (readings.registry, REGISTRY):
            assert (
                registry.get_sample_value("botocore_state_store_up", {"backend": "redis"}) is None
            )
    finally:
        store_for(runtime.settings).close()
