"""Forked children: none hangs on a lock of ours, and none keeps the parent's /metrics port.

Each scenario runs in a fresh interpreter (the forking happens there, not in pytest's
process) against the module's real local S3. Waits are bounded and on events (a child's
exit, a line on a pipe), never on time.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from botocore_resilience.testing import SERVICE_UNAVAILABLE, LocalS3

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

REPO = Path(__file__).resolve().parents[2]

# 200 forks while 4 threads call through one installation (bucket scope, few circuits, so
# circuits are created, evicted, opened and probed all the time: every lock of ours is
# taken over and over). Each child makes one call on a new client and exits; a child not
# done within CHILD_DEADLINE seconds is counted as hung and killed.
FORKS = """
import json, os, sys, threading, time
import boto3
from botocore.config import Config
from prometheus_client import CollectorRegistry
import botocore_resilience

endpoint, bucket, forks = sys.argv[1], sys.argv[2], int(sys.argv[3])
CHILD_DEADLINE = 120.0  # seconds: generous on a busy machine; a healthy child needs < 1
AT_ONCE = 8

session = boto3.Session(
    aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
botocore_resilience.install(
    session, registry=CollectorRegistry(), scope="bucket", max_circuits=8,
    failure_threshold=2, recovery_timeout=0.001, max_attempts=1)
config = Config(s3={"addressing_style": "path"}, max_pool_connections=8)

def new_client():
    return session.client("s3", endpoint_url=endpoint, config=config)

shared = new_client()
stop = threading.Event()
calls = [0] * 4

def work(n):
    i = 0
    while not stop.is_set():
        i += 1
        target = ("down", bucket, "missing-%d-%d" % (n, i % 40))[i % 3]
        try:
            shared.head_bucket(Bucket=target)
        except Exception:
            pass
        calls[n] += 1

threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(4)]
for thread in threads:
    thread.start()
while min(calls) < 5:  # every thread is calling before the first fork
    time.sleep(0.001)

running = {}  # pid -> when forked
hung = failed = done = 0

def reap(block_until):
    global hung, failed, done
    while running and (len(running) >= block_until):
        for pid, started in list(running.items()):
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                del running[pid]
                done += 1
                failed += os.waitstatus_to_exitcode(status) != 0
            elif time.monotonic() - started > CHILD_DEADLINE:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                del running[pid]
                hung += 1
        time.sleep(0.001)

for _ in range(forks):
    reap(AT_ONCE)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            try:
                new_client().head_bucket(Bucket=bucket)
            except botocore_resilience.CircuitBreakerOpen:
                pass  # an answer too: the child inherited an open circuit
        except BaseException:
            code = 1
        os._exit(code)
    running[pid] = time.monotonic()
reap(1)
stop.set()
print(json.dumps({"forks": forks, "hung": hung, "failed": failed, "done": done,
                  "parent_calls": sum(calls)}))
"""


def run_script(script: str, *args: str, timeout: float = 540) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def test_200_forks_while_4_threads_call_none_hangs(s3: LocalS3) -> None:
    bucket = s3.create_bucket()
    s3.inject(SERVICE_UNAVAILABLE, times=None, bucket="down")
    report = json.loads(run_script(FORKS, s3.endpoint_url, bucket, "200"))
    print("fork report:", report)
    assert report["hung"] == 0
    assert report["failed"] == 0
    assert report["done"] == 200


# The parent serves /metrics, forks, and exits. The child reports whether anything still
# accepts on the port once its parent is gone, then starts a server of its own and keeps
# it until its stdin closes.
METRICS_AFTER_FORK = """
import json, os, socket, sys
from prometheus_client import CollectorRegistry
from botocore_resilience.exposition import start_metrics_server
from botocore_resilience.metrics import metrics_for

port = int(sys.argv[1])
registry = CollectorRegistry()
metrics_for(registry, "botocore").call_finished("s3", "GetObject", "", "success", 0.1)
assert start_metrics_server(port, "127.0.0.1", registry, environ={})
parent_gone_r, parent_gone_w = os.pipe()
if os.fork() != 0:
    os._exit(0)  # the parent exits: its end of the pipe closes
os.close(parent_gone_w)
os.read(parent_gone_r, 1)  # end of file: the parent has exited
probe = socket.socket()
try:
    probe.connect(("127.0.0.1", port))
    held = True  # our inherited socket still listens: nobody will ever answer
except ConnectionRefusedError:
    held = False
probe.close()
started = start_metrics_server(port, "127.0.0.1", registry, environ={})
print(json.dumps({"pid": os.getpid(), "held": held, "started": started}), flush=True)
sys.stdin.read()  # serve until the test closes our stdin
os._exit(0)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_forked_child_closes_the_inherited_metrics_socket() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", METRICS_AFTER_FORK, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    report = None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=120), "the child never reported"
        report = json.loads(proc.stdout.readline())
        assert report["held"] is False  # the port was free once the parent exited
        assert report["started"] is True  # so the child could serve it itself
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            assert b"botocore_operations_total" in response.read()
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)
        if report is not None:
            # Not our child (its parent was): it exits on its own once its stdin closes.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(report["pid"], 0)


# In multiprocess mode prometheus-client's values share one lock of its own; a thread of
# the parent holding it at fork would hang the child's first update of any metric.
MULTIPROCESS_LOCK = """
import os, sys, tempfile
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
import prometheus_client.values
from prometheus_client import CollectorRegistry
from botocore_resilience import _fork
from botocore_resilience.metrics import metrics_for

metrics = metrics_for(CollectorRegistry(), "botocore")
metrics.call_finished("s3", "GetObject", "", "success", 0.1)
[lock] = [cell.cell_contents for cell in prometheus_client.values.ValueClass.inc.__closure__
          if hasattr(cell.cell_contents, "acquire")]
assert lock.acquire(blocking=False)
_fork._after_fork_in_child()  # what os.fork() runs in the child
print(lock.locked())
"""


def test_prometheus_clients_multiprocess_value_lock_is_released_in_the_child() -> None:
    assert run_script(MULTIPROCESS_LOCK).strip() == "False"
