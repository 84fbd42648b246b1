"""``python -m botocore_resilience demo`` end to end, in a subprocess, as a newcomer runs it.

Each run is bounded by a timeout; nothing here asserts how fast the demo was.
"""

from __future__ import annotations

import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any, Optional

import pytest

from botocore_resilience.config import ENV_PREFIX
from botocore_resilience.demo import fleet as demo_fleet

TIMEOUT = 120  # seconds: far above the demo's own bound, so only a hang trips it
PHASES = ["healthy", "outage: 503 SlowDown", "outage: connection refused", "recovery"]


def demo_environ(**extra: str) -> dict[str, str]:
    """The process environment without our settings or colour hints, plus ``extra``."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(ENV_PREFIX) and k not in ("NO_COLOR", "AWS_RETRY_MODE")
    }
    environ["AWS_EC2_METADATA_DISABLED"] = "true"
    environ.update(extra)
    return environ


def run_demo(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botocore_resilience", "demo", *args],
        env=demo_environ(**environ),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def summary(out: str) -> dict[str, dict[str, int]]:
    """The per-phase table: ``{phase: {success, error, circuit_open, retries, sent}}``."""
    lines = out.splitlines()
    start = lines.index("Calls by result, per phase")
    header = lines[start + 1].split()
    assert header == ["phase", "success", "error", "circuit_open", "retries", "sent", "seconds"]
    table = {}
    for line in lines[start + 2 : start + 7]:
        match = re.match(
            r"\s+(?:\d )?(.+?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+$", line
        )
        assert match, line
        name, *counts = match.groups()
        table[name] = dict(zip(header[1:6], map(int, counts)))
    return table


@pytest.fixture(scope="module")
def fast_run() -> subprocess.CompletedProcess[str]:
    return run_demo("--fast")


def test_demo_exits_0_and_tells_the_story(fast_run: subprocess.CompletedProcess[str]) -> None:
    out = fast_run.stdout
    assert fast_run.returncode == 0, out + fast_run.stderr
    assert "Traceback" not in fast_run.stderr
    assert "\033[" not in out  # not a terminal: no colours, no status line

    # The phases, in order.
    banners = [line for line in out.splitlines() if "==== phase" in line]
    assert [re.search(r"phase (\d)/4", line).group(1) for line in banners] == ["1", "2", "3", "4"]
    assert "503 SlowDown" in banners[1]
    assert "connections are refused" in banners[2]
    assert "recovery" in banners[3]

    # The circuit opens (with the count and the last error), fails fast, probes, and closes.
    opened = re.search(
        # The last error: "503 SlowDown", or for a HEAD (no body) just the status.
        r"circuit s3/us-east-1  CLOSED -> OPEN: after 5 consecutive failed calls \(last: "
        r"(503[^)]*|EndpointConnectionError)\)",
        out,
    )
    assert opened, out
    rejection = re.search(
        r"fail fast: (PutObject|GetObject|HeadObject) raised CircuitBreakerOpen in "
        r"[\d.]+ (us|ms), nothing sent; retry_after=[\d.]+ s",
        out,
    )
    assert rejection, out
    assert "OPEN -> HALF_OPEN: letting a probe through" in out
    assert "HALF_OPEN -> CLOSED: 2 successful probes" in out
    assert out.index("CLOSED -> OPEN") < out.index("HALF_OPEN -> CLOSED")
    # Retries are summarised, not one line each.
    assert "retried after" in out
    assert not re.search(r"^retry \d+ of", out, re.MULTILINE)

    assert "OK: the circuit opened" in out


def test_demo_summary_counts_add_up(fast_run: subprocess.CompletedProcess[str]) -> None:
    out = fast_run.stdout
    table = summary(out)
    assert list(table) == [*PHASES, "total"]
    healthy, storm, refused, recovery = (table[name] for name in PHASES)
    assert healthy["success"] > 0
    assert healthy["error"] == healthy["circuit_open"] == healthy["retries"] == 0
    outage = {k: storm[k] + refused[k] for k in storm}
    assert outage["error"] >= 5  # at least failure_threshold failed calls opened it
    assert outage["circuit_open"] > 0
    assert outage["retries"] > 0
    assert storm["success"] == refused["success"] == 0
    assert refused["sent"] == 0  # nothing reaches a stopped server
    assert recovery["success"] > 0
    for column in ("success", "error", "circuit_open", "retries", "sent"):
        assert table["total"][column] == sum(table[name][column] for name in PHASES)

    # The final metrics agree with the table.
    totals = re.search(
        r"botocore_operations_total, summed by result: success (\d+), error (\d+), "
        r"circuit_open (\d+)",
        out,
    )
    assert totals, out
    assert list(map(int, totals.groups())) == [
        table["total"][result] for result in ("success", "error", "circuit_open")
    ]
    assert (
        'botocore_circuit_breaker_transitions_total{circuit_name="s3/us-east-1",'
        'from_state="closed",to_state="open"} 1' in out
    )
    assert 'botocore_circuit_breaker_state{circuit_name="s3/us-east-1"} 0' in out
    # The wall time of a rejected call against a failed one.
    assert re.search(r"circuit_open \(rejected\)\s+[\d.]+ (us|ms)", out)
    assert re.search(r"error \(after 3 attempts\)\s+[\d.]+ (us|ms|s)", out)
    assert re.search(r"A rejected call came back ~[\d,]+x sooner than a failed one", out)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LineReader:
    """Reads a process's stdout on a thread, so the test can wait for a line with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[Optional[str]] = queue.Queue()
        assert process.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, deadline: float) -> re.Match[str]:
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} in time") from None
            if line is None:
                raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(self.lines))
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def rest(self, deadline: float) -> str:
        while True:
            line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                return "".join(self.lines)
            self.lines.append(line)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def test_demo_serves_metrics_while_it_runs() -> None:
    port = free_port()
    deadline = time.monotonic() + TIMEOUT
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "botocore_resilience",
            "demo",
            "--fast",
            "--metrics-port",
            str(port),
        ],
        env=demo_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        reader = LineReader(process)
        url = reader.wait_for(r"serving (http://\S+/metrics) while the demo runs", deadline)[1]
        assert url == f"http://127.0.0.1:{port}/metrics"
        reader.wait_for(r"CLOSED -> OPEN", deadline)
        during = scrape(url)
        assert (
            'botocore_circuit_breaker_transitions_total{circuit_name="s3/us-east-1",'
            'from_state="closed",to_state="open"} 1.0' in during
        )
        assert re.search(r'botocore_operations_total\{[^}]*result="error"[^}]*\} [1-9]', during)
        assert re.search(r'botocore_retry_attempts_total\{[^}]*attempt="1"[^}]*\} [1-9]', during)
        out = reader.rest(deadline)
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, out
        assert "OK: the circuit opened" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_demo_exits_1_when_the_circuit_never_opens() -> None:
    # A threshold the outage cannot reach: the demo must say so, and fail.
    done = run_demo(
        "--duration-scale", "0.25", "--workers", "2", **{ENV_PREFIX + "FAILURE_THRESHOLD": "1000"}
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "from the environment: BOTOCORE_RESILIENCE_FAILURE_THRESHOLD=1000" in done.stdout
    assert "FAILED: the circuit never opened" in done.stdout
    assert "-> OPEN" not in done.stdout


# -- scenarios ---------------------------------------------------------------------------------


def side_by_side(out: str) -> dict[str, dict[str, int]]:
    """The runs' comparison table: ``{run title: {success, ..., opened}}``."""
    lines = out.splitlines()
    start = lines.index("The runs side by side")
    header = lines[start + 1].split()
    assert header == ["run", "success", "error", "circuit_open", "retries", "sent", "opened"]
    table = {}
    for line in lines[start + 2 :]:
        match = re.match(r"\s+(run \d: .+?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
        if not match:
            break
        title, *counts = match.groups()
        table[title] = dict(zip(header[1:], map(int, counts)))
    return table


def test_a_partial_outage_opens_the_circuit_only_with_a_failure_rate() -> None:
    done = run_demo("--scenario", "partial", "--fast")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    runs = side_by_side(out)
    consecutive, rate = (
        runs["run 1: consecutive failures only"],
        runs["run 2: with failure_rate=20"],
    )
    # Consecutive counting: 30% of calls failed, and the circuit never opened.
    assert consecutive["error"] > 0
    assert consecutive["opened"] == consecutive["circuit_open"] == 0
    # The failure rate: it opened, rejected calls, and closed again once S3 was whole.
    assert rate["opened"] >= 1
    assert rate["circuit_open"] > 0
    run_2 = out[out.index("==== run 2") :]
    assert re.search(r"CLOSED -> OPEN: failure rate [\d.]+% of \d+ calls", run_2), run_2
    assert "OPEN -> HALF_OPEN: letting a probe through" in run_2
    assert "HALF_OPEN -> CLOSED: 2 successful probes" in run_2
    assert "-> OPEN" not in out[: out.index("==== run 2")]
    assert "OK: the same partial outage never opened" in out


def fleet_table(out: str) -> dict[str, dict[str, str]]:
    """The fleet's comparison: ``{run title: {failed calls, openings, probes, closed}}``."""
    lines = out.splitlines()
    start = lines.index("The fleet on its own and sharing one store")
    table = {}
    for line in lines[start + 2 : start + 4]:
        match = re.match(r"\s+(\d+ processes .+?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+/\d+)$", line)
        assert match, line
        title, failed, openings, probes, closed = match.groups()
        table[title] = {"failed": failed, "openings": openings, "probes": probes, "closed": closed}
    return table


@pytest.mark.skipif(
    demo_fleet.missing_parts() is not None, reason="needs redis-server and redis-py"
)
def test_a_fleet_sharing_a_store_opens_once_probes_one_at_a_time_and_closes_together() -> None:
    size, threshold, success_threshold = 3, 5, 2
    done = run_demo("--fleet", str(size), "--fast")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    table = fleet_table(out)
    alone = table[f"{size} processes on their own"]
    shared = table[f"{size} processes sharing redis-server"]
    # On their own: every process opens its own circuit after its own failed calls, and
    # probes its own way back.
    assert alone["openings"] == str(size)
    assert int(alone["failed"]) >= size * threshold
    assert alone["probes"] == str(size * success_threshold)
    # Sharing the store: the fleet opens after threshold failed calls in all (plus the few
    # already in flight), one probe at a time brings it back, closed everywhere together.
    # (The counts at the server and at the probe permits show it; "openings" only groups
    # the processes' reports by the fleet's seq.)
    assert threshold <= int(shared["failed"]) < int(alone["failed"])
    assert shared["probes"] == str(success_threshold)
    assert shared["openings"] == "1"
    assert alone["closed"] == shared["closed"] == f"{size}/{size}"
    run_2 = out[out.index("sharing redis-server ====") :]
    closings = re.findall(r"worker (\d)  \w+ -> CLOSED: .*\(fleet seq (\d+)\)", run_2)
    assert sorted(worker for worker, _ in closings) == [str(i) for i in range(size)]
    assert len({seq for _, seq in closings}) == 1  # the fleet's one closing, seen by all


def test_the_fleet_says_what_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    problem = demo_fleet.missing_parts()
    assert problem is not None
    assert "redis-server (Debian/Ubuntu: apt-get install redis-server)" in problem
