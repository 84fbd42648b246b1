"""The six metric families: names, types, labels, caching, and the state gauge's ordering."""

from __future__ import annotations

import gc
import threading
import warnings
import weakref
from pathlib import Path
from typing import Optional

import pytest
from prometheus_client import CollectorRegistry, Counter

from botocore_resilience.breaker import CircuitState, Transition
from botocore_resilience.metrics import (
    DURATION_BUCKETS,
    NULL_METRICS,
    Metrics,
    MetricsRegistrationError,
    MetricsSink,
    NullMetrics,
    is_valid_namespace,
    metrics_for,
)

CLOSED, HALF_OPEN, OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return metrics_for(registry, "botocore")


def transition(
    seq: int, from_state: CircuitState, to_state: CircuitState, name: str = "s3/us-east-1"
) -> Transition:
    return Transition(name, from_state, to_state, seq, consecutive_failures=5, cause="SlowDown")


def families(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """name -> (type, label names seen on its samples, ``le`` excluded)."""
    found = {}
    for family in registry.collect():
        labels: set[str] = set()
        for sample in family.samples:
            labels.update(name for name in sample.labels if name != "le")
        found[family.name] = (family.type, labels)
    return found


def value(registry: CollectorRegistry, name: str, **labels: str) -> Optional[float]:
    return registry.get_sample_value(name, labels)


# -- names, types, labels ------------------------------------------------------------------


def test_six_families_with_contract_names_types_and_labels(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.03)
    metrics.retry_made("s3", "GetObject", 1)
    metrics.quota_exhausted("s3", "GetObject")
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.transition(transition(1, CLOSED, OPEN))

    # prometheus-client reports a counter family without its _total suffix.
    assert families(registry) == {
        "botocore_operations": ("counter", {"service", "operation", "bucket", "result"}),
        "botocore_operation_duration_seconds": ("histogram", {"service", "operation", "bucket"}),
        "botocore_circuit_breaker_state": ("gauge", {"circuit_name"}),
        "botocore_circuit_breaker_transitions": (
            "counter",
            {"circuit_name", "from_state", "to_state"},
        ),
        "botocore_retry_attempts": ("counter", {"service", "operation", "attempt"}),
        "botocore_retry_quota_exhausted": ("counter", {"service", "operation"}),
    }


def test_families_exist_before_any_call(registry: CollectorRegistry) -> None:
    metrics_for(registry, "botocore")
    assert {name for name in families(registry)} == {
        "botocore_operations",
        "botocore_operation_duration_seconds",
        "botocore_circuit_breaker_state",
        "botocore_circuit_breaker_transitions",
        "botocore_retry_attempts",
        "botocore_retry_quota_exhausted",
    }


def test_call_finished_counts_each_result_and_observes_duration(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.02)
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.3)
    metrics.call_finished("s3", "GetObject", "photos", "error", 7.0)
    metrics.call_finished("s3", "GetObject", "photos", "circuit_open", None)
    metrics.call_finished("dynamodb", "GetItem", "", "success", 0.004)

    def ops(
        result: str, service: str = "s3", operation: str = "GetObject", bucket: str = "photos"
    ) -> Optional[float]:
        return value(
            registry,
            "botocore_operations_total",
            service=service,
            operation=operation,
            bucket=bucket,
            result=result,
        )

    assert ops("success") == 2
    assert ops("error") == 1
    assert ops("circuit_open") == 1
    assert ops("success", "dynamodb", "GetItem", "") == 1

    photos = {"service": "s3", "operation": "GetObject", "bucket": "photos"}
    name = "botocore_operation_duration_seconds"
    # The rejected call (duration None) is counted but not observed.
    assert registry.get_sample_value(name + "_count", photos) == 3
    assert registry.get_sample_value(name + "_sum", photos) == pytest.approx(7.32)
    assert registry.get_sample_value(name + "_bucket", {**photos, "le": "0.025"}) == 1
    assert registry.get_sample_value(name + "_bucket", {**photos, "le": "0.5"}) == 2
    assert registry.get_sample_value(name + "_bucket", {**photos, "le": "+Inf"}) == 3


def test_only_results_that_happened_get_a_series(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.02)
    labels = {"service": "s3", "operation": "GetObject", "bucket": "photos"}
    assert (
        registry.get_sample_value("botocore_operations_total", {**labels, "result": "error"})
        is None
    )


def test_unknown_result_is_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="result must be one of"):
        metrics.call_finished("s3", "GetObject", "", "timeout", 1.0)


def test_duration_buckets_span_5ms_to_60s(registry: CollectorRegistry, metrics: Metrics) -> None:
    assert DURATION_BUCKETS[0] == 0.005
    assert DURATION_BUCKETS[-1] == 60.0
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)
    metrics.call_finished("s3", "GetObject", "", "success", 0.001)
    bounds = {
        sample.labels["le"]
        for family in registry.collect()
        for sample in family.samples
        if sample.name == "botocore_operation_duration_seconds_bucket"
    }
    assert bounds == {str(bound) for bound in DURATION_BUCKETS} | {"+Inf"}


def test_retry_made_labels_attempt_as_string(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.retry_made("s3", "PutObject", 1)
    metrics.retry_made("s3", "PutObject", 2)
    metrics.retry_made("s3", "PutObject", 1)
    name = "botocore_retry_attempts_total"
    assert value(registry, name, service="s3", operation="PutObject", attempt="1") == 2
    assert value(registry, name, service="s3", operation="PutObject", attempt="2") == 1
    with pytest.raises(ValueError, match="from 1"):
        metrics.retry_made("s3", "PutObject", 0)


def test_quota_exhausted(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.quota_exhausted("sqs", "SendMessage")
    metrics.quota_exhausted("sqs", "SendMessage")
    name = "botocore_retry_quota_exhausted_total"
    assert value(registry, name, service="sqs", operation="SendMessage") == 2


def test_namespace_s3_reproduces_the_seed_names(registry: CollectorRegistry) -> None:
    metrics = metrics_for(registry, "s3")
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.1)
    metrics.retry_made("s3", "GetObject", 1)
    metrics.quota_exhausted("s3", "GetObject")
    metrics.circuit_added("s3/us-east-1", OPEN)
    metrics.transition(transition(1, CLOSED, OPEN))
    call = {"service": "s3", "operation": "GetObject"}
    assert (
        registry.get_sample_value(
            "s3_operations_total", {**call, "bucket": "photos", "result": "success"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "s3_operation_duration_seconds_count", {**call, "bucket": "photos"}
        )
        == 1
    )
    assert (
        registry.get_sample_value("s3_circuit_breaker_state", {"circuit_name": "s3/us-east-1"}) == 2
    )
    assert (
        registry.get_sample_value(
            "s3_circuit_breaker_transitions_total",
            {"circuit_name": "s3/us-east-1", "from_state": "closed", "to_state": "open"},
        )
        == 1
    )
    assert registry.get_sample_value("s3_retry_attempts_total", {**call, "attempt": "1"}) == 1
    assert registry.get_sample_value("s3_retry_quota_exhausted_total", call) == 1
    assert (
        registry.get_sample_value(
            "botocore_operations_total", {**call, "bucket": "photos", "result": "success"}
        )
        is None
    )


# -- the cache -----------------------------------------------------------------------------


def test_same_registry_and_namespace_share_one_object(registry: CollectorRegistry) -> None:
    first = metrics_for(registry, "botocore")
    second = metrics_for(registry, "botocore")  # would raise "Duplicated timeseries" if rebuilt
    assert second is first
    first.call_finished("s3", "GetObject", "", "success", 0.1)
    second.call_finished("s3", "GetObject", "", "success", 0.1)
    assert (
        value(
            registry,
            "botocore_operations_total",
            service="s3",
            operation="GetObject",
            bucket="",
            result="success",
        )
        == 2
    )


def test_registries_and_namespaces_are_independent() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    metrics_one, metrics_two = metrics_for(one, "botocore"), metrics_for(two, "botocore")
    assert metrics_one is not metrics_two
    assert metrics_for(one, "s3") is not metrics_one
    metrics_one.quota_exhausted("s3", "GetObject")
    labels = {"service": "s3", "operation": "GetObject"}
    assert one.get_sample_value("botocore_retry_quota_exhausted_total", labels) == 1
    assert two.get_sample_value("botocore_retry_quota_exhausted_total", labels) is None
    assert one.get_sample_value("s3_retry_quota_exhausted_total", labels) is None


def test_none_means_the_default_registry() -> None:
    from prometheus_client import REGISTRY

    assert metrics_for(None, "botocore_resilience_test") is metrics_for(
        REGISTRY, "botocore_resilience_test"
    )


def test_racing_first_calls_register_once(registry: CollectorRegistry) -> None:
    barrier = threading.Barrier(8)
    results: list[Metrics] = []
    errors: list[BaseException] = []

    def get() -> None:
        barrier.wait(timeout=10)
        try:
            results.append(metrics_for(registry, "botocore"))
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    assert len(results) == 8
    assert all(result is results[0] for result in results)


def test_cache_does_not_keep_a_registry_alive() -> None:
    registry = CollectorRegistry()
    metrics_for(registry, "botocore")
    ref = weakref.ref(registry)
    del registry
    gc.collect()
    assert ref() is None


def test_foreign_collector_with_our_name_raises_and_leaves_nothing_behind(
    registry: CollectorRegistry,
) -> None:
    Counter("botocore_retry_attempts_total", "someone else's", registry=registry)
    with pytest.raises(MetricsRegistrationError, match="botocore"):
        metrics_for(registry, "botocore")
    # Our families registered before the clash were taken back out...
    assert set(families(registry)) == {"botocore_retry_attempts"}
    # ...so another namespace still works on the same registry.
    metrics_for(registry, "mine").quota_exhausted("s3", "GetObject")


def test_registration_error_is_a_value_error() -> None:
    assert issubclass(MetricsRegistrationError, ValueError)


@pytest.mark.parametrize("namespace", ["botocore", "s3", "my_app", "_x", "a:b", ""])
def test_valid_namespaces(namespace: str) -> None:
    assert is_valid_namespace(namespace)


@pytest.mark.parametrize("namespace", ["3s", "my-app", "my app", "ns\n", "é"])
def test_invalid_namespace_is_refused(registry: CollectorRegistry, namespace: str) -> None:
    assert not is_valid_namespace(namespace)
    with pytest.raises(ValueError, match="namespace"):
        metrics_for(registry, namespace)
    assert list(registry.collect()) == []


# -- the state gauge and transitions -------------------------------------------------------


def state(registry: CollectorRegistry, name: str = "s3/us-east-1") -> Optional[float]:
    return value(registry, "botocore_circuit_breaker_state", circuit_name=name)


def transitions(
    registry: CollectorRegistry, from_state: str, to_state: str, name: str = "s3/us-east-1"
) -> Optional[float]:
    return value(
        registry,
        "botocore_circuit_breaker_transitions_total",
        circuit_name=name,
        from_state=from_state,
        to_state=to_state,
    )


def test_circuit_added_sets_the_gauge(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.circuit_added("dynamodb/eu-west-1", HALF_OPEN)
    assert state(registry) == 0
    assert state(registry, "dynamodb/eu-west-1") == 1


def test_transitions_count_and_move_the_gauge(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.transition(transition(1, CLOSED, OPEN))
    assert state(registry) == 2
    metrics.transition(transition(2, OPEN, HALF_OPEN))
    assert state(registry) == 1
    metrics.transition(transition(3, HALF_OPEN, OPEN))
    metrics.transition(transition(4, OPEN, HALF_OPEN))
    metrics.transition(transition(5, HALF_OPEN, CLOSED))
    assert state(registry) == 0
    assert transitions(registry, "closed", "open") == 1
    assert transitions(registry, "open", "half_open") == 2
    assert transitions(registry, "half_open", "open") == 1
    assert transitions(registry, "half_open", "closed") == 1


def test_gauge_ignores_a_transition_older_than_one_already_shown(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.circuit_added("s3/us-east-1", CLOSED)
    # The breaker notifies outside its lock: thread B's OPEN->HALF_OPEN (seq 2)
    # arrives before thread A's CLOSED->OPEN (seq 1).
    metrics.transition(transition(2, OPEN, HALF_OPEN))
    metrics.transition(transition(1, CLOSED, OPEN))
    assert state(registry) == 1
    # Both are still counted.
    assert transitions(registry, "closed", "open") == 1
    assert transitions(registry, "open", "half_open") == 1
    # A repeated seq is not newer either.
    metrics.transition(transition(2, HALF_OPEN, OPEN))
    assert state(registry) == 1


def test_out_of_order_is_tracked_per_circuit(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.transition(transition(7, CLOSED, OPEN, name="a"))
    metrics.transition(transition(1, CLOSED, OPEN, name="b"))
    assert state(registry, "a") == 2
    assert state(registry, "b") == 2


def test_circuit_added_starts_the_sequence_over(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.transition(transition(5, CLOSED, OPEN))
    # A new breaker under the same name counts its transitions from 1 again.
    metrics.circuit_added("s3/us-east-1", CLOSED)
    assert state(registry) == 0
    metrics.transition(transition(1, CLOSED, OPEN))
    assert state(registry) == 2


def test_circuit_removed_drops_its_series_only(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    for name in ("s3/us-east-1", "s3/eu-west-1"):
        metrics.circuit_added(name, CLOSED)
        metrics.transition(transition(1, CLOSED, OPEN, name=name))
        metrics.transition(transition(2, OPEN, HALF_OPEN, name=name))
        metrics.transition(transition(3, HALF_OPEN, CLOSED, name=name))

    metrics.circuit_removed("s3/us-east-1")

    assert state(registry) is None
    for from_state, to_state in [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]:
        assert transitions(registry, from_state, to_state) is None
        assert transitions(registry, from_state, to_state, name="s3/eu-west-1") == 1
    assert state(registry, "s3/eu-west-1") == 0


def test_circuit_removed_is_safe_when_absent_or_repeated(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.circuit_removed("never/added")
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.circuit_removed("s3/us-east-1")
    metrics.circuit_removed("s3/us-east-1")
    assert state(registry) is None


def test_a_removed_circuit_can_come_back(registry: CollectorRegistry, metrics: Metrics) -> None:
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.transition(transition(9, CLOSED, OPEN))
    metrics.circuit_removed("s3/us-east-1")
    # A fresh breaker: seq starts at 1 again and must not be taken for an old one.
    metrics.transition(transition(1, CLOSED, OPEN))
    assert state(registry) == 2
    assert transitions(registry, "closed", "open") == 1


def test_circuit_removed_in_multiprocess_mode_keeps_the_series_closed(
    registry: CollectorRegistry, tmp_path: Path
) -> None:
    # prometheus-client cannot remove a series across processes (remove() only warns),
    # so in multiprocess mode an evicted circuit is shown closed instead. Values stay
    # in memory here: prometheus-client chose its value storage when first imported.
    metrics = Metrics(registry, "botocore", environ={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.transition(transition(1, CLOSED, OPEN))
    metrics.transition(transition(2, OPEN, HALF_OPEN))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.circuit_removed("s3/us-east-1")
    assert state(registry) == 0
    assert transitions(registry, "closed", "open") == 1
    # It can come back, its sequence started over.
    metrics.transition(transition(1, CLOSED, OPEN))
    assert state(registry) == 2


def test_transitions_from_many_threads_leave_the_newest_state(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    # 200 transitions delivered by 8 threads in scrambled order; the last one (seq 200)
    # is OPEN, whatever order they arrive in.
    cycle = [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    events = [transition(seq, *cycle[(seq - 1) % 3]) for seq in range(1, 201)]
    events[-1] = transition(200, HALF_OPEN, OPEN)
    chunks = [events[i::8][::-1] for i in range(8)]
    barrier = threading.Barrier(8)

    def deliver(chunk: list[Transition]) -> None:
        barrier.wait(timeout=10)
        for event in chunk:
            metrics.transition(event)

    threads = [threading.Thread(target=deliver, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert state(registry) == 2
    total = sum(
        transitions(registry, a.value, b.value) or 0
        for a, b in [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN)]
    )
    assert total == 200


def test_per_call_methods_from_many_threads_lose_nothing(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait(timeout=10)
        for i in range(500):
            metrics.call_finished("s3", "GetObject", f"b{i % 5}", "success", 0.01)
            metrics.retry_made("s3", "GetObject", 1 + i % 3)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    calls = sum(
        value(
            registry,
            "botocore_operations_total",
            service="s3",
            operation="GetObject",
            bucket=f"b{b}",
            result="success",
        )
        or 0
        for b in range(5)
    )
    retries = sum(
        value(
            registry,
            "botocore_retry_attempts_total",
            service="s3",
            operation="GetObject",
            attempt=str(a),
        )
        or 0
        for a in (1, 2, 3)
    )
    assert calls == 8 * 500
    assert retries == 8 * 500


# -- NullMetrics ---------------------------------------------------------------------------


def test_null_metrics_has_every_method_and_does_nothing() -> None:
    public = {name for name in vars(Metrics) if not name.startswith("_")}
    assert public <= set(vars(NullMetrics))
    null = NullMetrics()
    null.call_finished("s3", "GetObject", "", "success", 0.1)
    null.call_finished("s3", "GetObject", "", "anything", None)
    null.retry_made("s3", "GetObject", 1)
    null.quota_exhausted("s3", "GetObject")
    null.circuit_added("s3/us-east-1", CLOSED)
    null.transition(transition(1, CLOSED, OPEN))
    null.circuit_removed("s3/us-east-1")
    assert isinstance(NULL_METRICS, NullMetrics)


def test_both_satisfy_the_sink_protocol(metrics: Metrics) -> None:
    sinks: list[MetricsSink] = [metrics, NullMetrics()]  # checked by mypy where it runs
    protocol = {name for name in vars(MetricsSink) if not name.startswith("_")}
    assert protocol == {name for name in vars(Metrics) if not name.startswith("_")}
    assert len(sinks) == 2
