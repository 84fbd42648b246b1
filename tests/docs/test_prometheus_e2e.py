"""End to end: a real Prometheus scrapes a real process using the plugin, through an outage.

A workload process installs the plugin with its ``/metrics`` server on loopback, sends S3
calls to a ``LocalS3``, exhausts botocore's retry quota on one client, opens a circuit on
another, and keeps it open. A real Prometheus (Debian's ``prometheus`` package; the server
``promtool`` ships with) scrapes it every second with ``docs/prometheus/alerts.yml`` loaded.

Then, through Prometheus's HTTP API:

* ``botocore_circuit_breaker_state`` reads 2 for the circuit;
* every dashboard expression, every alert expression and every ```` ```promql ```` block of
  the docs evaluates without error, and the dashboard's panels all have data;
* the alert rules loaded and evaluate with health "ok".

When ``python -m botocore_resilience demo`` exists with ``--metrics-port``, the same checks
run against the demo as well.

Everything listens on 127.0.0.1 on free ports; every wait polls against a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "prometheus" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus")

yaml = pytest.importorskip(
    "yaml", reason="PyYAML is needed to read the rule files (it comes with moto[server])"
)

from promql_sources import dashboard_expressions, docs_promql_blocks, rule_expressions  # noqa: E402

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None,
    reason="the prometheus server is not on PATH (Debian/Ubuntu: apt-get install prometheus)",
)

CIRCUIT = "e2e/s3/us-east-1"

# The workload: every metric family gets data, then the circuit opens and stays open.
WORKLOAD = """
import sys, time
import botocore_resilience
from botocore.exceptions import ClientError
from botocore_resilience.testing import LocalS3, SERVICE_UNAVAILABLE, SLOW_DOWN, no_backoff

port = int(sys.argv[1])
with LocalS3() as s3, no_backoff():
    bucket = s3.create_bucket()

    # Critical path: breaker on, long recovery_timeout so the circuit stays open for the test.
    storage = s3.session()
    botocore_resilience.install(
        storage, name="e2e", recovery_timeout=3600, metrics_port=port, metrics_addr="127.0.0.1"
    )
    client = s3.client(session=storage)
    client.put_object(Bucket=bucket, Key="k", Body=b"v")               # success
    s3.inject(SLOW_DOWN, times=2, operation="GetObject")
    client.get_object(Bucket=bucket, Key="k")                          # retries 1 and 2
    client.head_bucket(Bucket=bucket)

    # Best-effort path: no breaker, so it keeps retrying until botocore's quota runs out.
    cleanup = s3.session()
    botocore_resilience.install(cleanup, name="cleanup", breaker="off")
    sweeper = s3.client(session=cleanup)
    s3.inject(SERVICE_UNAVAILABLE, times=None, operation="DeleteObject")
    quota_reached = False
    for _ in range(200):
        try:
            sweeper.delete_object(Bucket=bucket, Key="tmp")
        except ClientError as err:
            if err.response["ResponseMetadata"].get("RetryQuotaReached"):
                quota_reached = True
                break
    assert quota_reached, "botocore's retry quota never ran out"
    s3.clear_faults()

    # The outage: connections refused, five failed calls open the circuit.
    s3.stop()
    for _ in range(5):
        try:
            client.head_bucket(Bucket=bucket)
        except Exception:
            pass
    print("OPEN", flush=True)
    while True:                                                         # rejected calls
        try:
            client.head_bucket(Bucket=bucket)
        except botocore_resilience.CircuitBreakerOpen:
            pass
        time.sleep(0.2)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, KeyError) as error:  # not up yet, or no data yet
            last_error = error
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error!r})")


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (the error is in it, not raised)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            return http_json(url)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as error:  # 400/422 carry the error as JSON
            return json.load(error)  # type: ignore[no-any-return]


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.stdout.read() if process.stdout else ""


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Prometheus, int]]:
    """A Prometheus on loopback that scrapes 127.0.0.1:<target port> every second."""
    assert PROMETHEUS is not None
    target_port, web_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "e2e",
                        "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                    }
                ],
            }
        )
    )
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{web_port}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{web_port}"
    try:
        wait_for(
            "Prometheus to be ready",
            lambda: (
                process.poll() is None
                and urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200
            ),
            timeout=60,
        )
        yield Prometheus(url), target_port
    finally:
        log = _stop(process)
        if process.returncode not in (0, -15):
            print(log[-5000:])


def _workload(port: int, tmp_path: Path) -> subprocess.Popen[str]:
    pytest.importorskip("moto.server", reason="LocalS3 needs the testing extra (moto[server])")
    script = tmp_path / "workload.py"
    script.write_text(WORKLOAD)
    return subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _demo(port: int, tmp_path: Path) -> subprocess.Popen[str]:
    probe = subprocess.run(
        [sys.executable, "-m", "botocore_resilience", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0 or "--metrics-port" not in probe.stdout:
        pytest.skip("no `python -m botocore_resilience demo --metrics-port` yet")
    return subprocess.Popen(
        [sys.executable, "-m", "botocore_resilience", "demo", "--metrics-port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _circuit_open(prom: Prometheus, selector: str) -> Callable[[], bool]:
    def check() -> bool:
        answer = prom.query(f"max(botocore_circuit_breaker_state{selector})")
        result = answer["data"]["result"]
        return bool(result) and float(result[0]["value"][1]) == 2

    return check


def _every_expression_evaluates(prom: Prometheus) -> None:
    expressions = {**dashboard_expressions(), **rule_expressions(), **docs_promql_blocks()}
    failures = {
        where: answer.get("error")
        for where, expr in expressions.items()
        if (answer := prom.query(expr))["status"] != "success"
    }
    assert not failures, f"expressions Prometheus rejected: {failures}"


def _panels_without_data(prom: Prometheus) -> list[str]:
    return [
        where
        for where, expr in dashboard_expressions().items()
        if where.startswith("panel") and not prom.query(expr)["data"]["result"]
    ]


def _wait_until_every_panel_has_data(prom: Prometheus, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while empty := _panels_without_data(prom):
        if time.monotonic() > deadline:
            pytest.fail(f"dashboard queries with no data during the outage: {empty}")
        time.sleep(0.5)


def _rules_are_healthy(prom: Prometheus) -> bool:
    groups = http_json(f"{prom.url}/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules} == {name.split()[1] for name in rule_expressions()}
    # Health is "unknown" until a rule has been evaluated once.
    return all(rule["health"] == "ok" for rule in rules)


def test_prometheus_scrapes_an_outage(prometheus: tuple[Prometheus, int], tmp_path: Path) -> None:
    prom, port = prometheus
    workload = _workload(port, tmp_path)
    try:
        wait_for(
            "the workload's circuit to read 2 in Prometheus",
            lambda: (
                workload.poll() is None and _circuit_open(prom, f'{{circuit_name="{CIRCUIT}"}}')()
            ),
            timeout=120,
        )
        _every_expression_evaluates(prom)

        # Every dashboard panel has something to show. rate() and increase() need two
        # samples of a series inside their window, and each series gets its second sample
        # at its own next scrape (on a busy machine, scrapes lag): so wait for each panel's
        # own query, not for some other counter's.
        _wait_until_every_panel_has_data(prom, timeout=90)

        quota = prom.query("sum(botocore_retry_quota_exhausted_total)")["data"]["result"]
        assert float(quota[0]["value"][1]) >= 1
        rejected = prom.query('sum(botocore_operations_total{result="circuit_open"})')["data"][
            "result"
        ]
        assert float(rejected[0]["value"][1]) >= 1

        wait_for("the alert rules to evaluate", lambda: _rules_are_healthy(prom), timeout=30)
    finally:
        output = _stop(workload)
    assert "OPEN" in output, output[-5000:]


def test_prometheus_scrapes_the_demo(prometheus: tuple[Prometheus, int], tmp_path: Path) -> None:
    prom, port = prometheus
    demo = _demo(port, tmp_path)

    def open_while_running() -> bool:
        if demo.poll() is not None:
            pytest.fail(f"the demo exited ({demo.returncode}) before Prometheus saw a circuit open")
        return _circuit_open(prom, "")()

    try:
        wait_for("a circuit of the demo to read 2 in Prometheus", open_while_running, timeout=180)
        _every_expression_evaluates(prom)
        wait_for("the alert rules to evaluate", lambda: _rules_are_healthy(prom), timeout=30)
    finally:
        output = _stop(demo)
    print(output[-3000:])
