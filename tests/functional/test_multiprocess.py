"""Metrics from several real worker processes, aggregated as a gunicorn deployment would see them.

Each worker is a fresh interpreter with ``PROMETHEUS_MULTIPROC_DIR`` set before
prometheus-client is imported (as gunicorn's config does), so its values go to
files in that directory; the test process reads them back with
``MultiProcessCollector`` and over HTTP through ``start_metrics_server``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from botocore_resilience.exposition import start_metrics_server, stop_metrics_server

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]

# Runs in each worker. Warnings are errors: prometheus-client warns if asked to
# remove a series in multiprocess mode, which circuit_removed must not do.
WORKER = """
import json, os, sys, warnings
warnings.simplefilter("error")
from botocore_resilience.breaker import CircuitState, Transition
from botocore_resilience.metrics import metrics_for

plan = json.loads(sys.argv[1])
metrics = metrics_for(None, "botocore")
metrics_for(None, "botocore")  # a second install in the same worker: same object
for _ in range(plan["calls"]):
    metrics.call_finished("s3", "GetObject", "photos", plan["result"], plan["duration"])
for attempt in plan["retries"]:
    metrics.retry_made("s3", "GetObject", attempt)
for _ in range(plan["quota"]):
    metrics.quota_exhausted("s3", "GetObject")
for name, states in plan["circuits"].items():
    metrics.circuit_added(name, CircuitState.CLOSED)
    for seq, (before, after) in enumerate(zip(["closed"] + states, states), start=1):
        metrics.transition(
            Transition(name, CircuitState(before), CircuitState(after), seq, 0, "test"))
for name in plan["removed"]:
    metrics.circuit_added(name, CircuitState.CLOSED)
    metrics.circuit_removed(name)
print(json.dumps({"pid": os.getpid()}))
"""

PLANS: dict[str, dict[str, Any]] = {
    "a": {
        "calls": 10,
        "result": "success",
        "duration": 0.1,
        "retries": [1, 1, 2],
        "quota": 0,
        "circuits": {"s3/us-east-1": ["open"]},
        "removed": [],
    },
    "b": {
        "calls": 5,
        "result": "error",
        "duration": 2.0,
        "retries": [1, 2, 3],
        "quota": 2,
        "circuits": {"s3/us-east-1": ["open", "half_open", "closed"], "dynamodb/eu-west-1": []},
        "removed": ["sqs/us-east-1"],
    },
    "c": {
        "calls": 7,
        "result": "success",
        "duration": 0.004,
        "retries": [],
        "quota": 1,
        "circuits": {"s3/us-east-1": ["open", "half_open"], "dynamodb/eu-west-1": ["open"]},
        "removed": [],
    },
}


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """Run the three workers at once; the multiprocess directory and each one's pid."""
    directory = tmp_path_factory.mktemp("multiproc")
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps(plan)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, plan in PLANS.items()
    }
    pids = {}
    try:
        for name, process in processes.items():
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, f"worker {name} failed:\n{err}"
            pids[name] = json.loads(out)["pid"]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return directory, pids


def collect(directory: Path, name: str, labels: dict[str, str]) -> Optional[float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry.get_sample_value(name, labels)


GET_OBJECT = {"service": "s3", "operation": "GetObject"}
PHOTOS = {**GET_OBJECT, "bucket": "photos"}


def test_counters_add_up_over_workers(workers: tuple[Path, dict[str, int]]) -> None:
    directory, _ = workers
    ops = "botocore_operations_total"
    assert collect(directory, ops, {**PHOTOS, "result": "success"}) == 10 + 7
    assert collect(directory, ops, {**PHOTOS, "result": "error"}) == 5
    retries = "botocore_retry_attempts_total"
    assert collect(directory, retries, {**GET_OBJECT, "attempt": "1"}) == 3
    assert collect(directory, retries, {**GET_OBJECT, "attempt": "2"}) == 2
    assert collect(directory, retries, {**GET_OBJECT, "attempt": "3"}) == 1
    assert collect(directory, "botocore_retry_quota_exhausted_total", GET_OBJECT) == 3
    transitions = "botocore_circuit_breaker_transitions_total"
    s3 = {"circuit_name": "s3/us-east-1"}
    assert collect(directory, transitions, {**s3, "from_state": "closed", "to_state": "open"}) == 3
    assert (
        collect(directory, transitions, {**s3, "from_state": "open", "to_state": "half_open"}) == 2
    )
    assert (
        collect(directory, transitions, {**s3, "from_state": "half_open", "to_state": "closed"})
        == 1
    )


def test_histogram_adds_up_over_workers(workers: tuple[Path, dict[str, int]]) -> None:
    directory, _ = workers
    name = "botocore_operation_duration_seconds"
    assert collect(directory, name + "_count", PHOTOS) == 22
    assert collect(directory, name + "_sum", PHOTOS) == pytest.approx(
        10 * 0.1 + 5 * 2.0 + 7 * 0.004
    )
    assert collect(directory, name + "_bucket", {**PHOTOS, "le": "0.005"}) == 7
    assert collect(directory, name + "_bucket", {**PHOTOS, "le": "0.1"}) == 17
    assert collect(directory, name + "_bucket", {**PHOTOS, "le": "1.0"}) == 17
    assert collect(directory, name + "_bucket", {**PHOTOS, "le": "2.5"}) == 22
    assert collect(directory, name + "_bucket", {**PHOTOS, "le": "+Inf"}) == 22


def test_state_gauge_shows_the_worst_live_worker(workers: tuple[Path, dict[str, int]]) -> None:
    """s3/us-east-1 is open in a, closed in b, half-open in c: the operator sees open (2),
    one series, no pid label. When a exits, it is the worst of b and c: half-open."""
    directory, pids = workers
    gauge = "botocore_circuit_breaker_state"
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    [family] = [f for f in registry.collect() if f.name == gauge]
    assert all(set(sample.labels) == {"circuit_name"} for sample in family.samples)
    assert collect(directory, gauge, {"circuit_name": "s3/us-east-1"}) == 2
    assert collect(directory, gauge, {"circuit_name": "dynamodb/eu-west-1"}) == 2
    # An evicted circuit cannot be removed across processes: it stays, closed.
    assert collect(directory, gauge, {"circuit_name": "sqs/us-east-1"}) == 0

    # gunicorn's child_exit hook; a copy keeps the module fixture's directory intact.
    survivors = directory.parent / "survivors"
    survivors.mkdir(exist_ok=True)
    for file in directory.iterdir():
        (survivors / file.name).write_bytes(file.read_bytes())
    mark_process_dead(pids["a"], path=str(survivors))  # type: ignore[no-untyped-call]
    assert collect(survivors, gauge, {"circuit_name": "s3/us-east-1"}) == 1
    # Counters keep a dead worker's counts.
    assert collect(survivors, "botocore_operations_total", {**PHOTOS, "result": "success"}) == 17


def forget_server() -> None:
    stop_metrics_server()


@pytest.fixture
def server_port() -> Iterator[int]:
    forget_server()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    yield port
    forget_server()


def test_metrics_server_serves_every_worker(
    workers: tuple[Path, dict[str, int]], server_port: int
) -> None:
    directory, _ = workers
    environ = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    # The registry argument is ignored in multiprocess mode: the files are the truth.
    assert start_metrics_server(server_port, "127.0.0.1", CollectorRegistry(), environ=environ)
    url = f"http://127.0.0.1:{server_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode("utf-8")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    key = tuple(sorted({**PHOTOS, "result": "success"}.items()))
    assert samples[("botocore_operations_total", key)] == 17
    state = (("circuit_name", "s3/us-east-1"),)
    assert samples[("botocore_circuit_breaker_state", state)] == 2
