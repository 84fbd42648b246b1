"""The OpenTelemetry sink on its own: circuits, eviction, sharing, names; no network.

Skipped without ``opentelemetry-sdk``, except the check that nothing imports
OpenTelemetry unless the sink is chosen.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from botocore_resilience.breaker import CircuitState, Transition


def test_nothing_imports_opentelemetry_or_redis_unless_the_sink_or_a_store_is_chosen() -> None:
    code = textwrap.dedent(
        """
        import sys, boto3, botocore_resilience
        from prometheus_client import CollectorRegistry
        session = boto3.Session(region_name="us-east-1")
        botocore_resilience.install(session, registry=CollectorRegistry())
        session.client("s3")
        import botocore_resilience.awscli, botocore_resilience.metrics
        import botocore_resilience.store, botocore_resilience.runtime
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("opentelemetry", "redis")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


sdk = pytest.importorskip("opentelemetry.sdk.metrics")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402

from botocore_resilience.otel_metrics import (  # noqa: E402
    is_valid_otel_namespace,
    otel_metrics_for,
)

OPEN, CLOSED, HALF_OPEN = CircuitState.OPEN, CircuitState.CLOSED, CircuitState.HALF_OPEN


def collected(reader: InMemoryMetricReader) -> dict[str, dict[tuple[Any, ...], Any]]:
    found: dict[str, dict[tuple[Any, ...], Any]] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found[metric.name] = {
                    tuple(p.attributes.values()): getattr(p, "value", None)
                    for p in metric.data.data_points
                }
    return found


def transition(name: str, seq: int, from_state: CircuitState, to_state: CircuitState) -> Transition:
    return Transition(
        circuit_name=name,
        from_state=from_state,
        to_state=to_state,
        seq=seq,
        consecutive_failures=5,
        cause="test",
    )


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


def test_state_follows_the_newest_transition_even_when_told_out_of_order(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    sink = otel_metrics_for(provider, "botocore")
    sink.circuit_added("s3/us-east-1", CLOSED)
    sink.transition(transition("s3/us-east-1", 2, OPEN, HALF_OPEN))
    sink.transition(transition("s3/us-east-1", 1, CLOSED, OPEN))  # arrives late

    found = collected(reader)
    assert found["botocore.circuit_breaker.state"] == {("s3/us-east-1",): 1}
    assert found["botocore.circuit_breaker.transitions"] == {
        ("s3/us-east-1", "open", "half_open"): 1,
        ("s3/us-east-1", "closed", "open"): 1,
    }


def test_an_evicted_circuit_stops_being_reported(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    sink = otel_metrics_for(provider, "botocore")
    for name in ("s3/us-east-1/a", "s3/us-east-1/b"):
        sink.circuit_added(name, CLOSED)
        sink.transition(transition(name, 1, CLOSED, OPEN))
    sink.circuit_removed("s3/us-east-1/a")
    sink.circuit_removed("never-added")  # safe

    found = collected(reader)
    assert found["botocore.circuit_breaker.state"] == {("s3/us-east-1/b",): 2}
    assert found["botocore.circuit_breaker.transitions"] == {
        ("s3/us-east-1/b", "closed", "open"): 1
    }


def test_one_sink_per_provider_and_namespace(provider: MeterProvider) -> None:
    assert otel_metrics_for(provider, "botocore") is otel_metrics_for(provider, "botocore")
    assert otel_metrics_for(provider, "s3") is not otel_metrics_for(provider, "botocore")
    assert otel_metrics_for(MeterProvider(), "botocore") is not otel_metrics_for(
        provider, "botocore"
    )


def test_bad_values_are_refused_before_anything_is_recorded(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    sink = otel_metrics_for(provider, "botocore")
    with pytest.raises(ValueError, match="result"):
        sink.call_finished("s3", "GetObject", "", "maybe", 0.1)
    with pytest.raises(ValueError, match="attempt"):
        sink.retry_made("s3", "GetObject", 0)
    assert collected(reader) == {}


@pytest.mark.parametrize(
    ("namespace", "valid"),
    [
        ("botocore", True),
        ("s3", True),
        ("", True),
        ("my_app.aws", True),
        ("_x", False),
        ("a:b", False),
        ("9lives", False),
    ],
)
def test_namespaces_valid_for_opentelemetry(namespace: str, valid: bool) -> None:
    assert is_valid_otel_namespace(namespace) is valid


def test_an_invalid_namespace_is_refused(provider: MeterProvider) -> None:
    with pytest.raises(ValueError, match="OpenTelemetry"):
        otel_metrics_for(provider, "app:aws")


def test_no_namespace_means_bare_names(
    provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    sink = otel_metrics_for(provider, "")
    sink.quota_exhausted("s3", "GetObject")
    assert collected(reader) == {"retry.quota_exhausted": {("s3", "GetObject"): 1}}
