"""The runtime factory and the observer fan-out (runtime.py, observers.py, clock.reader_of).

The three entry points (``install()``, ``install_global()``, the client plugin) build
their runtime through :func:`build_runtime`; these tests check what that buys: one way
of reading settings (warnings included), one clock reader, circuits shared by equal
installations, ``/metrics`` started by installing rather than by building, and one
path for everything observed.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import ConfigurationError, install_global, uninstall_global
from botocore_resilience import plugin as plugin_module
from botocore_resilience import runtime as runtime_module
from botocore_resilience.clock import MONOTONIC, reader_of
from botocore_resilience.metrics import NullMetrics
from botocore_resilience.observers import (
    RESULTS,
    LogObserver,
    MetricsObserver,
    Observer,
    Observers,
)
from botocore_resilience.runtime import build_runtime, serve_metrics
from botocore_resilience.testing import FakeClock

TYPO = {"BOTOCORE_RESILIENCE_FAILURE_TRESHOLD": "3"}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith(("BOTOCORE_RESILIENCE_", "BOTOCORE_EXPERIMENTAL__")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    plugin_module._reset_for_tests()
    yield
    uninstall_global()
    plugin_module._reset_for_tests()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def typo_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "FAILURE_TRESHOLD" in r.getMessage()
    ]


# -- one factory: every entry point reads settings the same way ---------------------------------


def test_install_warns_about_a_misspelt_variable(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    session = botocore.session.Session()
    botocore_resilience.install(session, registry=registry, environ=TYPO)
    botocore_resilience.uninstall(session)
    assert len(typo_warnings(caplog)) == 1


def test_install_global_warns_about_a_misspelt_variable(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    install_global(registry=registry, environ=TYPO)
    assert len(typo_warnings(caplog)) == 1


def test_the_client_plugin_warns_about_a_misspelt_variable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOTOCORE_RESILIENCE_FAILURE_TRESHOLD", "3")
    monkeypatch.setenv("BOTOCORE_RESILIENCE_METRICS", "off")  # the default registry stays clean
    client = botocore.session.Session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    plugin_module.initialize_client_plugin(client)
    plugin_module.initialize_client_plugin(client)  # built once: warned once
    assert len(typo_warnings(caplog)) == 1


def test_the_client_plugin_logs_its_failures_under_its_own_name(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOTOCORE_RESILIENCE_METRICS", "off")
    caplog.set_level(logging.DEBUG, logger="botocore_resilience")
    plugin_module.initialize_client_plugin(object())  # no meta.events: cannot be covered
    messages = [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]
    assert messages
    assert all("client plugin" in m for m in messages), messages


def test_a_bad_setting_raises_before_anything_is_built(registry: CollectorRegistry) -> None:
    with pytest.raises(ConfigurationError):
        build_runtime({"BOTOCORE_RESILIENCE_SCOPE": "planet"}, registry=registry)
    assert list(registry.collect()) == []  # not even the metrics were registered


def test_the_runtime_remembers_where_its_settings_came_from() -> None:
    environ = {"BOTOCORE_RESILIENCE_NAME": "storage"}
    runtime = build_runtime(environ, metrics=False)
    assert runtime.environ is environ
    assert runtime.settings.name == "storage"


# -- the clock and the jitter, chosen once -----------------------------------------------------


def test_the_default_clock_is_read_by_time_monotonic_itself() -> None:
    assert reader_of(None) is time.monotonic
    assert reader_of(MONOTONIC) is time.monotonic
    runtime = build_runtime({}, metrics=False)
    assert runtime.now is time.monotonic
    assert runtime.clock is MONOTONIC


def test_an_injected_clock_is_read_through_its_own_method() -> None:
    clock = FakeClock(7.0)
    runtime = build_runtime({}, clock=clock, metrics=False)
    assert runtime.now() == 7.0
    clock.advance(2)
    assert runtime.now() == 9.0


def test_the_jitter_is_injected_once() -> None:
    def jitter() -> float:
        return 0.0

    assert build_runtime({}, jitter=jitter, metrics=False).jitter is jitter
    import random

    assert build_runtime({}, metrics=False).jitter is random.random


# -- /metrics: a step of installing, not of building -------------------------------------------


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    started: list[tuple[Any, ...]] = []

    def start(port: int, addr: str, registry: Any = None, **kwargs: Any) -> bool:
        started.append((port, addr, registry))
        return True

    monkeypatch.setattr(runtime_module, "start_metrics_server", start)
    return started


def test_building_a_runtime_starts_no_server(
    registry: CollectorRegistry, servers: list[tuple[Any, ...]]
) -> None:
    runtime = build_runtime({}, registry=registry, metrics_port=9464)
    assert servers == []
    serve_metrics(runtime, registry)
    assert servers == [(9464, "0.0.0.0", registry)]


def test_every_entry_point_serves_metrics_when_asked(
    registry: CollectorRegistry,
    servers: list[tuple[Any, ...]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = botocore.session.Session()
    botocore_resilience.install(session, registry=registry, environ={}, metrics_port=9464)
    botocore_resilience.uninstall(session)
    install_global(registry=registry, environ={}, metrics_port=9465)
    monkeypatch.setenv("BOTOCORE_RESILIENCE_METRICS_PORT", "9466")
    # The plugin registers on prometheus-client's REGISTRY: names nobody else uses.
    monkeypatch.setenv("BOTOCORE_RESILIENCE_METRICS_NAMESPACE", "test_runtime_plugin")
    plugin_module.initialize_client_plugin(
        botocore.session.Session().create_client(
            "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
        )
    )
    assert [port for port, _addr, _registry in servers] == [9464, 9465, 9466]


def test_no_server_without_metrics(servers: list[tuple[Any, ...]]) -> None:
    serve_metrics(build_runtime({}, metrics=False, metrics_port=9464))
    serve_metrics(build_runtime({}, enabled=False, metrics_port=9464))
    assert servers == []


# -- circuits shared by equal installations, keyed by the objects themselves ---------------------


def test_equal_installations_share_their_circuits(registry: CollectorRegistry) -> None:
    clock = FakeClock()
    first = build_runtime({}, registry=registry, clock=clock)
    second = build_runtime({}, registry=registry, clock=clock)
    assert first.circuits is not None
    assert second.circuits is first.circuits
    assert build_runtime({}, registry=registry, clock=FakeClock()).circuits is not first.circuits
    assert build_runtime({}, registry=CollectorRegistry(), clock=clock).circuits is not (
        first.circuits
    )
    other = build_runtime({}, registry=registry, clock=clock, failure_threshold=9)
    assert other.circuits is not first.circuits


def test_shared_circuits_go_with_the_last_runtime_that_uses_them() -> None:
    clock = FakeClock()
    runtime = build_runtime({}, clock=clock, metrics=False)
    assert runtime.circuits is not None
    circuits_ref = __import__("weakref").ref(runtime.circuits)
    clock_ref = __import__("weakref").ref(clock)
    del runtime, clock
    gc.collect()
    # The cache held the clock in its key, and let both go together.
    assert circuits_ref() is None
    assert clock_ref() is None


def test_breaker_off_has_no_circuits() -> None:
    assert build_runtime({}, breaker="off", metrics=False).circuits is None


# -- one observability path ---------------------------------------------------------------------


def test_metrics_and_logs_are_the_subscribers(registry: CollectorRegistry) -> None:
    runtime = build_runtime({}, registry=registry)
    names = [name for name, _subscriber in runtime.observers.subscribers]
    assert names == ["metrics", "logging"]
    assert isinstance(runtime.observers.subscribers[0][1], MetricsObserver)
    assert isinstance(runtime.observers.subscribers[1][1], LogObserver)
    quiet = build_runtime({}, metrics=False)
    assert [name for name, _s in quiet.observers.subscribers] == ["logging"]


def test_a_transition_reaches_metrics_and_logs(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = build_runtime({}, registry=registry, clock=FakeClock(), failure_threshold=1)
    assert runtime.circuits is not None
    breaker = runtime.circuits.breaker_for("s3", "us-east-1", "GetObject", "")
    from botocore_resilience.breaker import Outcome

    breaker.record(breaker.acquire(), Outcome.FAILURE, "503 SlowDown")
    labels = {"circuit_name": "s3/us-east-1", "from_state": "closed", "to_state": "open"}
    assert registry.get_sample_value("botocore_circuit_breaker_transitions_total", labels) == 1
    assert any(
        getattr(r, "transition", None) is not None and r.levelno == logging.WARNING
        for r in caplog.records
    )


def test_the_fan_out_calls_every_subscriber_in_order_even_after_one_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard: list[str] = []

    class Broken(Observer):
        def quota_exhausted(self, service: str, operation: str) -> None:
            heard.append("broken")
            raise RuntimeError("boom")

    class Fine(Observer):
        def quota_exhausted(self, service: str, operation: str) -> None:
            heard.append(f"fine {service} {operation}")

    caplog.set_level(logging.DEBUG, logger="botocore_resilience")
    observers = Observers([("broken", Broken()), ("fine", Fine())])
    observers.quota_exhausted("s3", "GetObject")  # never raises
    assert heard == ["broken", "fine s3 GetObject"]
    assert any("internal error in broken" in r.getMessage() for r in caplog.records)


def test_one_subscriber_that_fails_never_raises_into_the_caller() -> None:
    class Broken(Observer):
        def call_finished(self, *args: Any) -> None:  # type: ignore[override]
            raise RuntimeError("boom")

        def retry_made(self, *args: Any) -> None:  # type: ignore[override]
            raise RuntimeError("boom")

    observers = Observers([("broken", Broken())])
    observers.retry_made("s3", "GetObject", "", None, 1, "503")


def test_the_event_of_every_call_costs_no_frame_of_ours() -> None:
    # Heard by one subscriber, call_finished is its own method: the handlers guard it
    # (tests/unit/test_handlers.py) and log a failure under the subscriber's name.
    subscriber = MetricsObserver(NullMetrics())
    observers = Observers([("metrics", subscriber)])
    assert observers.call_finished == subscriber.sink.call_finished
    assert observers.call_finished_by == "metrics"
    two = Observers([("metrics", subscriber), ("logging", LogObserver(60.0))])
    assert two.call_finished == subscriber.sink.call_finished  # logging does not hear it
    assert Observers([]).call_finished_by == "observers"


def test_events_nobody_hears_cost_nothing() -> None:
    class OnlyTransitions(Observer):
        def transition(self, transition: Any) -> None:
            pass

    assert set(OnlyTransitions().hooks()) == {"transition"}
    observers = Observers([("t", OnlyTransitions())])
    observers.call_finished("s3", "GetObject", "", "success", 0.1)
    assert observers.call_finished is Observers([]).call_finished  # the shared no-op


def test_one_vocabulary_for_a_calls_result() -> None:
    assert RESULTS == ("success", "error", "circuit_open")
    from botocore_resilience import call_metrics

    assert frozenset(RESULTS) == call_metrics.RESULTS
