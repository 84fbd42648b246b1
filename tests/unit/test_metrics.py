"""The six metric families: names, types, labels, caching, and the state gauge's ordering."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import prometheus_client.metrics
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics_exposition
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

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


# -- single process: our collector against prometheus-client's Counter and Histogram --------


def client_metrics(registry: CollectorRegistry, tmp_path: Path, namespace: str) -> Metrics:
    """Metrics whose per-call families are prometheus-client's ``Counter`` and ``Histogram``.

    That is multiprocess mode; the values stay in memory here all the same, because
    prometheus-client chose its value storage when first imported.
    """
    return Metrics(registry, namespace, environ={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})


def exercise_every_family(metrics: Metrics) -> None:
    # Label sets interleaved, a result first seen late, a circuit_open with no other call
    # (an empty histogram), durations on, between and past the bucket bounds.
    calls: list[tuple[str, str, str, str, Optional[float]]] = [
        ("s3", "GetObject", "photos", "success", 0.02),
        ("s3", "HeadObject", "logs", "circuit_open", None),
        ("s3", "GetObject", "photos", "error", 7.0),
        ("dynamodb", "GetItem", "", "success", 0.005),
        ("s3", "GetObject", "photos", "success", 0.0050001),
        ("s3", "GetObject", "photos", "circuit_open", None),
        ("dynamodb", "GetItem", "", "success", 60.0),
        ("dynamodb", "GetItem", "", "error", 61.0),
        ("s3", "PutObject", "photos", "success", 0.0),
        ("s3", "GetObject", "photos", "success", 1.0 / 3),
    ]
    for call in calls:
        metrics.call_finished(*call)
    metrics.retry_made("s3", "GetObject", 1)
    metrics.retry_made("s3", "GetObject", 2)
    metrics.quota_exhausted("s3", "GetObject")
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.transition(transition(1, CLOSED, OPEN))


Scrape = list[tuple[str, str, str, list[tuple[str, dict[str, str], Optional[float]]]]]


def parsed(text: str, parse: Callable[[str], Iterator[Any]]) -> tuple[Scrape, list[float]]:
    """Families in order (name, type, help, samples in order), ``_created`` values apart."""
    families: Scrape = []
    created: list[float] = []
    for family in parse(text):
        samples = []
        for sample in family.samples:
            if sample.name.endswith("_created"):
                created.append(sample.value)
                samples.append((sample.name, sample.labels, None))
            else:
                samples.append((sample.name, sample.labels, sample.value))
        families.append((family.name, family.type, family.documentation, samples))
    return families, created


FORMATS = {
    "prometheus text": (generate_latest, text_string_to_metric_families),
    "openmetrics": (
        openmetrics_exposition.generate_latest,
        openmetrics_parser.text_string_to_metric_families,
    ),
}


@pytest.mark.parametrize("namespace", ["botocore", ""])
@pytest.mark.parametrize("exposition", sorted(FORMATS))
def test_single_process_scrape_is_what_prometheus_client_would_export(
    tmp_path: Path, namespace: str, exposition: str
) -> None:
    generate, parse = FORMATS[exposition]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    before = time.time()
    exercise_every_family(Metrics(ours, namespace, environ={}))
    exercise_every_family(client_metrics(theirs, tmp_path, namespace))
    after = time.time()

    ours_families, ours_created = parsed(generate(ours).decode(), parse)
    theirs_families, theirs_created = parsed(generate(theirs).decode(), parse)
    # Every family, sample, label and value, in the same order; only _created differs.
    assert ours_families == theirs_families
    assert len(ours_created) == len(theirs_created) > 0
    assert all(before <= created <= after for created in ours_created)
    # The raw text too, once _created values are blanked out.
    blank = "\n".join(
        line.rsplit(" ", 1)[0] if "_created" in line and not line.startswith("#") else line
        for line in generate(ours).decode().splitlines()
    )
    assert blank == "\n".join(
        line.rsplit(" ", 1)[0] if "_created" in line and not line.startswith("#") else line
        for line in generate(theirs).decode().splitlines()
    )


def test_created_samples_follow_prometheus_clients_switch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What PROMETHEUS_DISABLE_CREATED_SERIES=true sets when prometheus-client is imported.
    monkeypatch.setattr(prometheus_client.metrics, "_use_created", False)
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    exercise_every_family(Metrics(ours, "botocore", environ={}))
    exercise_every_family(client_metrics(theirs, tmp_path, "botocore"))
    ours_families, ours_created = parsed(
        generate_latest(ours).decode(), text_string_to_metric_families
    )
    theirs_families, _ = parsed(generate_latest(theirs).decode(), text_string_to_metric_families)
    assert ours_families == theirs_families
    assert ours_created == []


def test_created_is_when_each_series_first_appeared(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.1)
    between = time.time()
    metrics.call_finished("s3", "GetObject", "photos", "error", 0.1)
    labels = {"service": "s3", "operation": "GetObject", "bucket": "photos"}
    success = value(registry, "botocore_operations_created", **labels, result="success")
    error = value(registry, "botocore_operations_created", **labels, result="error")
    histogram = value(registry, "botocore_operation_duration_seconds_created", **labels)
    assert success is not None
    assert error is not None
    assert histogram is not None
    assert histogram <= success <= between <= error


def test_a_call_never_sent_exports_an_empty_histogram(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    # As Histogram.labels() did: the series exists, with nothing observed.
    metrics.call_finished("s3", "GetObject", "photos", "circuit_open", None)
    labels = {"service": "s3", "operation": "GetObject", "bucket": "photos"}
    name = "botocore_operation_duration_seconds"
    assert registry.get_sample_value(name + "_count", labels) == 0
    assert registry.get_sample_value(name + "_sum", labels) == 0
    assert registry.get_sample_value(name + "_bucket", {**labels, "le": "+Inf"}) == 0


def test_an_unknown_result_adds_no_series(registry: CollectorRegistry, metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="result must be one of"):
        metrics.call_finished("s3", "GetObject", "photos", "timeout", 1.0)
    assert [s for family in registry.collect() for s in family.samples] == []


def test_values_are_floats_as_prometheus_client_exports_them(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.5)
    for family in registry.collect():
        for sample in family.samples:
            assert type(sample.value) is float, sample


@pytest.mark.parametrize(
    "foreign",
    [
        lambda r: Counter("botocore_operations_total", "someone else's", registry=r),
        lambda r: Gauge("botocore_operations_created", "someone else's", registry=r),
        lambda r: Gauge("botocore_operation_duration_seconds_sum", "someone else's", registry=r),
        lambda r: Gauge("botocore_circuit_breaker_state", "someone else's", registry=r),
    ],
    ids=["operations", "operations_created", "duration_sum", "state"],
)
def test_a_clash_with_any_per_call_name_raises_and_leaves_nothing_behind(
    registry: CollectorRegistry, foreign: Callable[[CollectorRegistry], object]
) -> None:
    foreign(registry)
    names_before = set(families(registry))
    with pytest.raises(MetricsRegistrationError, match="botocore"):
        metrics_for(registry, "botocore")
    assert set(families(registry)) == names_before
    metrics_for(registry, "mine").call_finished("s3", "GetObject", "", "success", 0.1)


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Threads switch every microsecond instead of every 5 ms: a lost update would show."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.usefixtures("switch_often")
def test_one_series_from_many_threads_while_scraped(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    # 32 threads on one label set, scraped while they run: no lost update, and every scrape
    # is consistent (a series' numbers are read together, under its lock). The threads keep
    # calling until the scraper has seen their numbers 20 times.
    threads, at_least = 32, 300
    labels = {"service": "s3", "operation": "GetObject", "bucket": "photos"}
    duration = "botocore_operation_duration_seconds"
    outcomes = [("success", 0.25), ("error", 2.0), ("circuit_open", None)]
    barrier = threading.Barrier(threads + 1)
    scraped_enough = threading.Event()
    made = [0] * threads
    scrapes: list[dict[tuple[str, Optional[str], Optional[str]], float]] = []
    errors: list[BaseException] = []

    def call(i: int) -> None:
        barrier.wait(timeout=10)
        n = 0
        # Past at_least, a pause every 100 calls lets the scraper in.
        while n < at_least or not scraped_enough.wait(0 if n % 100 else 0.001):
            result, seconds = outcomes[n % 3]
            metrics.call_finished("s3", "GetObject", "photos", result, seconds)
            n += 1
        made[i] = n

    def scrape() -> None:
        barrier.wait(timeout=10)
        try:
            while len(scrapes) < 20:
                seen = {
                    (sample.name, sample.labels.get("le"), sample.labels.get("result")): (
                        sample.value
                    )
                    for family in registry.collect()
                    for sample in family.samples
                    if sample.labels.get("bucket") == "photos"
                }
                if seen:
                    scrapes.append(seen)
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)
        finally:
            scraped_enough.set()

    workers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
    scraper = threading.Thread(target=scrape)
    for thread in [*workers, scraper]:
        thread.start()
    for thread in [*workers, scraper]:
        thread.join(timeout=60)

    assert errors == []
    ops = "botocore_operations_total"
    for seen in scrapes:
        sent = seen.get((ops, None, "success"), 0.0) + seen.get((ops, None, "error"), 0.0)
        fast = seen[duration + "_bucket", "0.25", None]
        slow = seen[duration + "_bucket", "2.5", None] - fast
        assert seen[duration + "_bucket", "+Inf", None] == seen[duration + "_count", None, None]
        assert seen[duration + "_count", None, None] == sent
        assert seen[duration + "_sum", None, None] == 0.25 * fast + 2.0 * slow
    expected = {result: 0 for result, _ in outcomes}
    for n in made:
        for k, (result, _seconds) in enumerate(outcomes):
            expected[result] += len(range(k, n, 3))
    for result, count in expected.items():
        assert value(registry, ops, **labels, result=result) == count
    sent = expected["success"] + expected["error"]
    assert registry.get_sample_value(duration + "_count", labels) == sent
    assert registry.get_sample_value(duration + "_sum", labels) == (
        0.25 * expected["success"] + 2.0 * expected["error"]
    )
    assert (
        registry.get_sample_value(duration + "_bucket", {**labels, "le": "0.25"})
        == (expected["success"])
    )


@pytest.mark.usefixtures("switch_often")
@pytest.mark.parametrize("kind", ["single process", "prometheus-client classes"])
def test_new_label_sets_from_many_threads_at_once(
    registry: CollectorRegistry, tmp_path: Path, kind: str
) -> None:
    # 32 threads reach the same new label sets together: each series and result is made
    # once, and no count made while another thread creates it is lost.
    if kind == "single process":
        metrics = Metrics(registry, "botocore", environ={})
    else:
        metrics = client_metrics(registry, tmp_path, "botocore")
    threads = 32
    barrier = threading.Barrier(threads)

    def call(i: int) -> None:
        barrier.wait(timeout=10)
        for bucket in range(20):
            for result in ("error", "success", "circuit_open"):
                duration = None if result == "circuit_open" else 0.1
                metrics.call_finished("s3", "GetObject", f"b{bucket}", result, duration)

    workers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    samples = [s for family in registry.collect() for s in family.samples]
    totals = [s for s in samples if s.name == "botocore_operations_total"]
    counts = [s for s in samples if s.name == "botocore_operation_duration_seconds_count"]
    assert len(totals) == 20 * 3
    assert {s.value for s in totals} == {threads}
    assert len(counts) == 20
    assert {s.value for s in counts} == {2 * threads}


def test_circuit_removed_leaves_the_per_call_families_alone(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.1)
    metrics.circuit_added("s3/us-east-1", CLOSED)
    metrics.transition(transition(1, CLOSED, OPEN))

    def per_call() -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, s.labels, s.value)
            for family in registry.collect()
            if family.name in ("botocore_operations", "botocore_operation_duration_seconds")
            for s in family.samples
        ]

    kept = per_call()
    metrics.circuit_removed("s3/us-east-1")
    assert state(registry) is None
    assert per_call() == kept
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.1)
    labels = {"service": "s3", "operation": "GetObject", "bucket": "photos"}
    assert value(registry, "botocore_operations_total", **labels, result="success") == 2


# -- NullMetrics ---------------------------------------------------------------------------


def test_null_metrics_has_every_method_and_does_nothing() -> None:
    protocol = {name for name in vars(MetricsSink) if not name.startswith("_")}
    assert protocol <= set(vars(NullMetrics))
    null = NullMetrics()
    null.call_finished("s3", "GetObject", "", "success", 0.1)
    null.call_finished("s3", "GetObject", "", "anything", None)
    null.retry_made("s3", "GetObject", 1)
    null.quota_exhausted("s3", "GetObject")
    null.circuit_added("s3/us-east-1", CLOSED)
    null.transition(transition(1, CLOSED, OPEN))
    null.circuit_removed("s3/us-east-1")
    assert isinstance(NULL_METRICS, NullMetrics)


@pytest.mark.parametrize("sink", [Metrics, NullMetrics])
def test_both_satisfy_the_sink_protocol(sink: type) -> None:
    # Every method of the protocol, with the same parameters (names, kinds, defaults):
    # what a caller may pass to one sink it may pass to the other. Metrics has more (the
    # bound on bucket labels), which is fine.
    import inspect

    protocol = {name for name in vars(MetricsSink) if not name.startswith("_")}
    assert protocol  # the protocol is not empty
    for name in protocol:
        expected = inspect.signature(getattr(MetricsSink, name)).parameters
        actual = inspect.signature(getattr(sink, name)).parameters
        assert [(p.name, p.kind, p.default) for p in actual.values()] == [
            (p.name, p.kind, p.default) for p in expected.values()
        ], f"{sink.__name__}.{name}"


# -- bounded bucket label ------------------------------------------------------------------


def bucket_counts(registry: CollectorRegistry) -> dict[str, float]:
    """``{bucket label: calls}`` summed over every series of operations_total."""
    counts: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "botocore_operations_total":
                bucket = sample.labels["bucket"]
                counts[bucket] = counts.get(bucket, 0.0) + sample.value
    return counts


@pytest.mark.parametrize("kind", ["single process", "prometheus-client classes"])
def test_buckets_past_the_bound_are_counted_under_other(
    registry: CollectorRegistry, tmp_path: Path, kind: str
) -> None:
    environ = {} if kind == "single process" else {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    metrics = Metrics(registry, "botocore", environ=environ, max_buckets=3)
    for n in range(10):
        metrics.call_finished("s3", "GetObject", f"bucket-{n}", "success", 0.1)
        metrics.call_finished("s3", "PutObject", f"bucket-{n}", "error", 0.1)
    metrics.call_finished("dynamodb", "GetItem", "", "success", 0.1)  # "" is no bucket
    counts = bucket_counts(registry)
    assert counts == {
        "bucket-0": 2.0,
        "bucket-1": 2.0,
        "bucket-2": 2.0,
        "__other__": 14.0,
        "": 1.0,
    }
    assert sum(counts.values()) == 21  # every call counted once
    durations = [
        s
        for family in registry.collect()
        for s in family.samples
        if s.name == "botocore_operation_duration_seconds_count"
    ]
    assert {s.labels["bucket"] for s in durations} == {
        "bucket-0",
        "bucket-1",
        "bucket-2",
        "__other__",
        "",
    }


def test_a_bucket_admitted_once_keeps_its_label(registry: CollectorRegistry) -> None:
    metrics = Metrics(registry, "botocore", environ={}, max_buckets=1)
    metrics.call_finished("s3", "GetObject", "first", "success", 0.1)
    metrics.call_finished("s3", "GetObject", "second", "success", 0.1)
    metrics.call_finished("s3", "HeadObject", "first", "success", 0.1)  # a new operation
    assert bucket_counts(registry) == {"first": 2.0, "__other__": 1.0}


def test_the_bound_is_the_largest_any_install_asked_for(registry: CollectorRegistry) -> None:
    metrics = metrics_for(registry, "botocore", max_buckets=2)
    assert metrics_for(registry, "botocore", max_buckets=5) is metrics
    assert metrics.max_buckets == 5
    metrics_for(registry, "botocore", max_buckets=1)
    assert metrics.max_buckets == 5


def test_racing_new_buckets_never_pass_the_bound(registry: CollectorRegistry) -> None:
    metrics = Metrics(registry, "botocore", environ={}, max_buckets=10)
    threads = 16
    barrier = threading.Barrier(threads)

    def call(i: int) -> None:
        barrier.wait(timeout=10)
        for n in range(50):
            metrics.call_finished("s3", "GetObject", f"t{i}-{n}", "success", 0.1)

    workers = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    counts = bucket_counts(registry)
    assert len(counts) == 10 + 1  # ten buckets and __other__
    assert sum(counts.values()) == threads * 50


# -- the gauge shows the circuit that judges the calls -------------------------------------


def gauge(registry: CollectorRegistry, name: str = "s3/us-east-1") -> Optional[float]:
    return registry.get_sample_value("botocore_circuit_breaker_state", {"circuit_name": name})


def test_an_older_circuit_of_the_same_name_does_not_move_the_gauge(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    # A re-install() with new options while a call is in flight: the old circuit (still
    # judging that call) opens after the new one has taken over the name.
    from botocore_resilience.breaker import BreakerPolicy, CircuitBreaker, Outcome
    from botocore_resilience.testing import FakeClock

    clock = FakeClock()
    old = CircuitBreaker(
        "s3/us-east-1", BreakerPolicy(failure_threshold=1), clock, metrics.transition
    )
    metrics.circuit_added(old.name, old.state, old)
    in_flight = old.acquire()
    new = CircuitBreaker(
        "s3/us-east-1", BreakerPolicy(failure_threshold=3), clock, metrics.transition
    )
    metrics.circuit_added(new.name, new.state, new)
    old.record(in_flight, Outcome.FAILURE, "503")
    assert old.state is OPEN
    assert gauge(registry) == 0  # new, which judges every call from now on, is closed
    value = registry.get_sample_value(
        "botocore_circuit_breaker_transitions_total",
        {"circuit_name": "s3/us-east-1", "from_state": "closed", "to_state": "open"},
    )
    assert value == 1  # the old circuit's transition happened, and is counted
    for _ in range(3):
        new.record(new.acquire(), Outcome.FAILURE, "503")
    assert gauge(registry) == 2


def test_the_gauge_reads_the_owner_whatever_order_transitions_arrive_in(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    from botocore_resilience.breaker import BreakerPolicy, CircuitBreaker, Outcome
    from botocore_resilience.testing import FakeClock

    delivered: list[Transition] = []
    breaker = CircuitBreaker(
        "s3/us-east-1", BreakerPolicy(failure_threshold=1), FakeClock(), delivered.append
    )
    metrics.circuit_added(breaker.name, breaker.state, breaker)
    breaker.record(breaker.acquire(), Outcome.FAILURE, "503")
    breaker.reset()
    for late in reversed(delivered):  # closed last happened, but open is delivered last
        metrics.transition(late)
    assert gauge(registry) == 0


def test_removing_a_circuit_that_lost_its_name_keeps_the_owners_series(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    from botocore_resilience.breaker import CircuitBreaker

    old, new = CircuitBreaker("s3/us-east-1"), CircuitBreaker("s3/us-east-1")
    metrics.circuit_added(old.name, old.state, old)
    metrics.circuit_added(new.name, new.state, new)
    metrics.circuit_removed(old.name, old)
    assert gauge(registry) == 0
    metrics.circuit_removed(new.name, new)
    assert gauge(registry) is None


def test_two_live_installations_sharing_names_are_warned_about(
    registry: CollectorRegistry, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    # Two differently configured Circuits, both alive (both judge calls), one registry.
    from botocore_resilience.breaker import BreakerPolicy
    from botocore_resilience.circuits import Circuits
    from botocore_resilience.testing import FakeClock

    def circuits(threshold: int) -> Circuits:
        return Circuits(
            scope="service",
            prefix="",
            policy=BreakerPolicy(failure_threshold=threshold),
            clock=FakeClock(),
            observer=metrics.transition,
            on_created=lambda b: metrics.circuit_added(b.name, b.state, b),
        )

    first, second = circuits(5), circuits(2)
    locks_held_while_logging: list[bool] = []

    class LockChecker(logging.Handler):
        # A log handler may make AWS calls through the plugin: it must run outside our locks.
        def emit(self, record: logging.LogRecord) -> None:
            locks = (metrics._circuit_lock, first._lock, second._lock)
            locks_held_while_logging.extend(lock.locked() for lock in locks)

    checker = LockChecker()
    logging.getLogger("botocore_resilience").addHandler(checker)
    try:
        with caplog.at_level("WARNING", logger="botocore_resilience"):
            first.breaker_for("s3", "us-east-1", "GetObject", "")
            metrics.call_finished("s3", "GetObject", "", "success", 0.1)
            assert caplog.records == []
            second.breaker_for("s3", "us-east-1", "GetObject", "")
            second.breaker_for("sqs", "us-east-1", "SendMessage", "")  # a name only one has
            # Logged when the call that made the circuit finishes, outside every lock.
            metrics.call_finished("s3", "GetObject", "", "success", 0.1)
            metrics.call_finished("s3", "GetObject", "", "success", 0.1)
    finally:
        logging.getLogger("botocore_resilience").removeHandler(checker)
    [record] = caplog.records
    assert "s3/us-east-1" in record.getMessage()
    assert "BOTOCORE_RESILIENCE_NAME" in record.getMessage()
    assert locks_held_while_logging == [False, False, False]


def test_no_warning_when_the_older_installation_is_gone(
    registry: CollectorRegistry, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    # A re-install: the old circuits are dropped; a breaker of theirs may live on with a
    # call in flight, but judges nothing new.
    from botocore_resilience.breaker import BreakerPolicy
    from botocore_resilience.circuits import Circuits
    from botocore_resilience.testing import FakeClock

    def circuits(threshold: int) -> Circuits:
        return Circuits(
            scope="service",
            prefix="",
            policy=BreakerPolicy(failure_threshold=threshold),
            clock=FakeClock(),
            observer=metrics.transition,
            on_created=lambda b: metrics.circuit_added(b.name, b.state, b),
        )

    old = circuits(5)
    in_flight = old.breaker_for("s3", "us-east-1", "GetObject", "")
    del old
    gc.collect()
    with caplog.at_level("WARNING", logger="botocore_resilience"):
        circuits(2).breaker_for("s3", "us-east-1", "GetObject", "")
        metrics.call_finished("s3", "GetObject", "", "success", 0.1)
    assert caplog.records == []
    assert in_flight.name == "s3/us-east-1"


# -- registration is all or nothing --------------------------------------------------------


class FlakyRegistry(CollectorRegistry):
    """Refuses the ``fail_at``-th registration once, with an error of its own."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.calls = 0

    def register(self, collector: Any) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("the registry's backend hiccupped")
        super().register(collector)


def collectors_registered() -> int:
    counting = FlakyRegistry(fail_at=0)
    Metrics(counting, "botocore", environ={})
    return counting.calls


@pytest.mark.parametrize("which", ["first", "middle", "last"])
def test_a_registry_that_fails_once_keeps_none_of_our_families(which: str) -> None:
    total = collectors_registered()
    registry = FlakyRegistry({"first": 1, "middle": total // 2 + 1, "last": total}[which])
    with pytest.raises(RuntimeError, match="hiccupped"):
        metrics_for(registry, "botocore")
    assert list(registry.collect()) == []
    metrics = metrics_for(registry, "botocore")  # the next attempt registers them all
    metrics.call_finished("s3", "GetObject", "", "success", 0.1)
    reference = CollectorRegistry()
    metrics_for(reference, "botocore").call_finished("s3", "GetObject", "", "success", 0.1)
    assert families(registry) == families(reference)


# -- fork ----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_locks_held_at_fork_are_free_in_the_child(registry: CollectorRegistry) -> None:
    # Every lock a thread of the parent may hold at fork time (ours: metrics, per-call
    # series, bucket bound, circuits and their breakers, the module-level cache; and those
    # of the prometheus-client objects we own, and the registry's) is free in the child.
    from botocore_resilience import metrics as metrics_module
    from botocore_resilience.breaker import BreakerPolicy
    from botocore_resilience.circuits import Circuits
    from botocore_resilience.testing import FakeClock

    metrics = metrics_for(registry, "botocore")
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.1)
    metrics.retry_made("s3", "GetObject", 1)
    metrics.circuit_added("s3/us-east-1", CLOSED)
    circuits = Circuits(scope="service", prefix="", policy=BreakerPolicy(), clock=FakeClock())
    breaker = circuits.breaker_for("s3", "us-east-1", "GetObject", "")
    calls: Any = metrics._calls
    [series] = calls._series.values()
    retry_child = next(iter(metrics._retry_children.values()))
    held = {
        "metrics": metrics._circuit_lock,
        "per-call families": calls._lock,
        "one series": series.lock,
        "bucket bound": calls.buckets._lock,
        "metrics cache (module level)": metrics_module._cache_lock,
        "retry family": metrics._retries._lock,
        "retry series value": retry_child._value._lock,
        "registry": registry._lock,
        "circuits": circuits._lock,
    }
    reinitialised: list[str] = []  # the breaker's locks are its own business: ask it
    breaker._reinit_lock_after_fork = lambda: reinitialised.append(breaker.name)  # type: ignore[method-assign]
    for lock in held.values():
        assert lock.acquire(blocking=False)
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never return into pytest
        still_held = [name for name, lock in held.items() if lock.locked()]
        if reinitialised != ["s3/us-east-1"]:
            still_held.append("breaker")
        os._exit(len(still_held))
    for lock in held.values():
        lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0, f"{os.WEXITSTATUS(status)} locks still held in the child"
