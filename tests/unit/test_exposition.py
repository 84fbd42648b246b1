"""The /metrics server: scraped over real HTTP on 127.0.0.1, one per process, never raising."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Callable

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from botocore_resilience import _metrics_http, exposition
from botocore_resilience.breaker import CircuitState
from botocore_resilience.exposition import start_metrics_server, stop_metrics_server
from botocore_resilience.metrics import metrics_for

NO_MULTIPROC: dict[str, str] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode("utf-8")
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def forget_server() -> None:
    stop_metrics_server()


@pytest.fixture(autouse=True)
def no_server_left_behind() -> Iterator[None]:
    forget_server()
    yield
    forget_server()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_serves_the_registry_over_http(registry: CollectorRegistry) -> None:
    metrics = metrics_for(registry, "botocore")
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.02)
    metrics.circuit_added("s3/us-east-1", CircuitState.OPEN)
    port = free_port()

    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is True

    families = scrape(port)
    assert (
        "botocore_operations_total",
        {"service": "s3", "operation": "GetObject", "bucket": "photos", "result": "success"},
        1.0,
    ) in families["botocore_operations"]
    assert families["botocore_circuit_breaker_state"] == [
        ("botocore_circuit_breaker_state", {"circuit_name": "s3/us-east-1"}, 2.0)
    ]
    assert "botocore_operation_duration_seconds" in families
    # Served live: a later increment shows on the next scrape.
    metrics.call_finished("s3", "GetObject", "photos", "success", 0.02)
    assert (
        "botocore_operations_total",
        {"service": "s3", "operation": "GetObject", "bucket": "photos", "result": "success"},
        2.0,
    ) in scrape(port)["botocore_operations"]


def test_second_start_on_the_same_port_is_a_quiet_no_op(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is True
    with caplog.at_level(logging.DEBUG, logger="botocore_resilience"):
        assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is False
        assert start_metrics_server(port, "127.0.0.1", None, environ=NO_MULTIPROC) is False
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    scrape(port)  # the first server still answers


def test_start_on_another_port_warns_and_keeps_the_first(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    port, other = free_port(), free_port()
    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is True
    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        assert start_metrics_server(other, "127.0.0.1", registry, environ=NO_MULTIPROC) is False
    [record] = caplog.records
    assert record.name == "botocore_resilience"
    assert record.levelno == logging.WARNING
    assert "already running" in record.getMessage()
    assert str(port) in record.getMessage()
    assert str(other) in record.getMessage()
    scrape(port)


def test_port_in_use_warns_and_returns_false(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sibling:
        sibling.bind(("127.0.0.1", 0))
        sibling.listen()
        port = sibling.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
            assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is False
    [record] = caplog.records
    assert record.name == "botocore_resilience"
    assert record.levelno == logging.WARNING
    assert f"127.0.0.1:{port}" in record.getMessage()
    # Nothing was left claiming to run: once the port is free, a later start works.
    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is True
    scrape(port)


def test_unusable_address_warns_and_returns_false(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        assert start_metrics_server(70000, "127.0.0.1", environ=NO_MULTIPROC) is False
        assert (
            start_metrics_server(free_port(), "no such host.invalid", environ=NO_MULTIPROC) is False
        )
    assert len(caplog.records) == 2
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_missing_multiprocess_directory_warns_and_returns_false(
    tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"PROMETHEUS_MULTIPROC_DIR": f"{tmp_path}/does-not-exist"}
    with caplog.at_level(logging.WARNING, logger="botocore_resilience"):
        assert start_metrics_server(free_port(), "127.0.0.1", environ=environ) is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING


def test_stop_frees_the_port(registry: CollectorRegistry) -> None:
    port = free_port()
    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is True
    assert stop_metrics_server() is True
    assert stop_metrics_server() is False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))  # would raise EADDRINUSE if still held
    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is True
    scrape(port)


# -- bounded threads, idle connections (real sockets; waits on counts, never on time) -----


def wait_until(predicate: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    """Poll ``predicate`` until it holds; fail (never pass) when the generous deadline ends."""
    end = time.monotonic() + deadline
    while not predicate():
        assert time.monotonic() < end, f"still waiting for {what}"
        time.sleep(0.005)


def scrape_soon(port: int) -> None:
    """A scrape against a server whose idle timeout is tiny: on a busy machine the client
    may be descheduled between connecting and sending for longer than that, and be cut
    off as idle, which is the server doing its job. Retry until one gets through."""
    end = time.monotonic() + 60
    while True:
        try:
            scrape(port)
            return
        except (OSError, http.client.HTTPException):
            assert time.monotonic() < end, "no scrape got through"


def server_threads() -> int:
    return sum(t.name.startswith("botocore-resilience-metrics") for t in threading.enumerate())


def open_idle(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]


def test_idle_connections_hold_no_threads_and_a_scrape_still_gets_through(
    registry: CollectorRegistry,
) -> None:
    metrics_for(registry, "botocore").call_finished("s3", "GetObject", "", "success", 0.1)
    port = free_port()
    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC) is True
    server = exposition.running_server()
    assert server is not None
    idle = open_idle(port, 300)
    try:
        wait_until(lambda: server.stats["accepted"] == 300, "300 connections accepted")
        # One accepting thread and the fixed pool, not one thread per connection.
        assert server_threads() == 1 + _metrics_http.WORKERS
        assert "botocore_operations" in scrape(port)
        assert server_threads() == 1 + _metrics_http.WORKERS
    finally:
        for sock in idle:
            sock.close()


def test_silent_connections_are_closed_after_the_idle_timeout(registry: CollectorRegistry) -> None:
    port = free_port()
    assert start_metrics_server(
        port, "127.0.0.1", registry, environ=NO_MULTIPROC, idle_timeout=0.05
    )
    server = exposition.running_server()
    assert server is not None
    idle = open_idle(port, 20)
    try:
        wait_until(lambda: server.stats["timed_out"] == 20, "20 idle connections timed out")
        for sock in idle:
            assert sock.recv(1) == b""  # closed by the server: end of stream
        scrape_soon(port)
    finally:
        for sock in idle:
            sock.close()


def test_a_client_that_stops_mid_request_frees_its_worker(registry: CollectorRegistry) -> None:
    port = free_port()
    assert start_metrics_server(
        port, "127.0.0.1", registry, environ=NO_MULTIPROC, idle_timeout=0.05, workers=1
    )
    server = exposition.running_server()
    assert server is not None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as half:
        half.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never the rest
        wait_until(lambda: server.stats["answered"] == 1, "the half request given up")
        scrape_soon(port)  # the only worker is free again


def test_beyond_max_waiting_the_oldest_idle_connection_is_dropped(
    registry: CollectorRegistry,
) -> None:
    port = free_port()
    assert start_metrics_server(port, "127.0.0.1", registry, environ=NO_MULTIPROC, max_waiting=10)
    server = exposition.running_server()
    assert server is not None
    idle = open_idle(port, 15)
    try:
        # A connection is counted accepted before the one it displaces is counted dropped:
        # wait for both (a busy machine was seen reading between the two).
        wait_until(
            lambda: server.stats["accepted"] == 15 and server.stats["dropped"] == 5,
            "15 connections accepted, 5 of them dropped",
        )
        assert [sock.recv(1) for sock in idle[:5]] == [b""] * 5
        scrape(port)
    finally:
        for sock in idle:
            sock.close()
