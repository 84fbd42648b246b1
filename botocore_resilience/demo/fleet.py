"""``demo --fleet N``: N worker processes against one local S3, on their own and then
sharing their circuits through a local ``redis-server``.

Each run starts N :mod:`~.fleet_worker` processes (one calling thread each) and takes
them through healthy -> 503 SlowDown to every request -> recovery, changing phases only
between calls (every worker holds, the fault changes, every worker begins the next
phase). Without a store each process counts ``failure_threshold`` failed calls of its
own before it fails fast, and probes on its own; sharing the store, the fleet opens
after ``failure_threshold`` failed calls in all, lets one probe at a time through
(counted where it is sent, by its probe permit) and closes in every process together.

The demo starts its own ``redis-server`` (on a free loopback port, nothing on disk) when
one is installed, and says what is missing otherwise (exit status 2).
"""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, TextIO

from ..config import Settings
from . import report
from .console import Console
from .options import DemoOptions
from .runner import IGNORED
from .tally import FleetRecord, PhaseRecord, TransitionSeen
from .workload import make_bucket

__all__ = ["RedisServer", "missing_parts", "play_fleet"]

DEADLINE = 60.0
"""Seconds any one wait on a worker may take: far above what it needs, so only a hang trips it."""


def missing_parts() -> Optional[str]:
    """What ``--fleet`` needs and is missing, in words, or ``None``."""
    problems = []
    if shutil.which("redis-server") is None:
        problems.append("redis-server (Debian/Ubuntu: apt-get install redis-server)")
    try:
        import redis  # noqa: F401
    except ImportError:
        problems.append("redis-py (pip install 'botocore-resilience[redis]')")
    if not problems:
        return None
    return "demo --fleet needs " + " and ".join(problems) + ": the fleet shares its circuits there."


class RedisServer:
    """A ``redis-server`` of the demo's own: loopback, a free port, nothing kept on disk."""

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="botocore-resilience-demo-")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        server = shutil.which("redis-server") or "redis-server"
        args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", self._directory.name, "--loglevel", "warning"]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + DEADLINE
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        self._directory.cleanup()


class _Worker:
    """One worker process; its events go to the fleet's queue as ``(index, event)``."""

    def __init__(
        self, index: int, options: dict[str, Any], env: dict[str, str], events: queue.Queue[Any]
    ) -> None:
        self.index = index
        self.ready = self.held = False
        self.state = "closed"
        self.opened = False
        self.summary: Optional[dict[str, Any]] = None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botocore_resilience.demo.fleet_worker", json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, args=(events,), daemon=True).start()

    def _read(self, events: queue.Queue[Any]) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                events.put((self.index, json.loads(line)))
            except ValueError:
                events.put((self.index, {"ev": "log", "msg": line.rstrip()}))
        events.put((self.index, {"ev": "exit"}))

    def send(self, command: str) -> None:
        if self.process.poll() is None and self.process.stdin is not None:
            try:
                self.process.stdin.write(command + "\n")
                self.process.stdin.flush()
            except OSError:
                pass  # it died: its "exit" event says so

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


def play_fleet(
    options: DemoOptions,
    console: Console,
    s3: Any,
    environ: Mapping[str, str],
    stderr: TextIO,
) -> int:
    """Both runs of ``--fleet N`` and their comparison; the exit status."""
    problem = missing_parts()
    if problem is not None:
        print(problem, file=stderr)
        return 2
    size = options.fleet or 1
    bucket = make_bucket(s3)
    store = RedisServer().start()
    try:
        base = Settings.from_env(
            {k: v for k, v in environ.items() if k not in IGNORED},
            recovery_timeout=round(2.5 * options.duration_scale, 3),
        )
        _header(console, options, s3, store, base, size)
        records, passed = [], True
        for title, url in (
            (f"{size} processes on their own", None),
            (f"{size} processes sharing redis-server", store.url),
        ):
            s3.reset()
            record = _FleetRun(options, console, s3, environ, bucket, size, title, url).play()
            records.append(record)
            console.lines(report.phase_table(record.phases))
            lines, ok = report.fleet_verdict(record)
            console.lines([("", ""), *lines])
            passed = passed and ok
        console.lines(report.fleet_comparison(records, base.failure_threshold))
        console.print()
        if passed:
            console.print(
                "OK: on their own, every process opened its circuit after its own failed calls "
                "and probed alone; sharing the store, the fleet opened once, probed one call at "
                "a time, and closed together.",
                "bold green",
            )
        else:
            console.print("FAILED: see the runs above.", "bold red")
        return 0 if passed else 1
    finally:
        store.stop()


def _header(
    console: Console,
    options: DemoOptions,
    s3: Any,
    store: RedisServer,
    settings: Settings,
    size: int,
) -> None:
    from .. import __version__

    out, indent = console.print, " " * 12
    out(f"botocore-resilience {__version__} demo: a fleet of {size} processes", "bold")
    out()
    out(f"  S3        moto in this process, {s3.endpoint_url}")
    out(f"  store     redis-server on {store.url} (started by the demo)")
    out(
        f"  workload  {size} processes, one thread each calling PutObject, GetObject, HeadObject "
        f"in turn, {options.rate:g} calls/s"
    )
    out(
        f"  plugin    {settings.failure_threshold} consecutive failed calls open a circuit; "
        f"it rejects calls for {settings.recovery_timeout:g} s,"
    )
    out(
        f"{indent}then lets {settings.half_open_max_calls} probe at a time through; "
        f"{settings.success_threshold} good probes close it;"
    )
    out(f"{indent}botocore {options.retry_mode} mode, {options.max_attempts} attempts per call")
    out(
        f"{indent}run 1: each process keeps its circuit to itself; run 2: they share it (state_url)"
    )


class _FleetRun:
    """One run of the fleet: its workers, phases and timeline."""

    def __init__(
        self,
        options: DemoOptions,
        console: Console,
        s3: Any,
        environ: Mapping[str, str],
        bucket: str,
        size: int,
        title: str,
        state_url: Optional[str],
    ) -> None:
        self.options = options
        self.console = console
        self.s3 = s3
        self.scale = options.duration_scale
        self.title = title
        self.shared = state_url is not None
        self.events: queue.Queue[Any] = queue.Queue()
        self.transitions: list[tuple[int, TransitionSeen]] = []
        self.phases: list[PhaseRecord] = []
        install: dict[str, Any] = {
            "recovery_timeout": round(2.5 * self.scale, 3),
            "retry_mode": options.retry_mode,
            "max_attempts": options.max_attempts,
        }
        if state_url is not None:
            # Generous: the demo is about a healthy store on a machine that may be busy.
            install.update(state_url=state_url, state_timeout=0.5)
        worker_options = {
            "endpoint": s3.endpoint_url,
            "bucket": bucket,
            "rate": options.rate,
            "install": install,
        }
        env = dict(environ)
        env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        self.workers = [_Worker(i, worker_options, env, self.events) for i in range(size)]

    def play(self) -> FleetRecord:
        console = self.console
        console.print()
        console.print(f"==== {self.title} ====", "bold cyan")
        try:
            self._wait(lambda: all(w.ready for w in self.workers), "ready")
            console.zero = time.monotonic()
            from ..testing import SLOW_DOWN

            s3, scale = self.s3, self.scale
            self._phase("healthy", "healthy: S3 answers every request", lambda: None, 2.0 * scale)
            self._phase(
                "outage: 503 SlowDown",
                "outage: S3 answers every request with 503 SlowDown",
                lambda: s3.inject(SLOW_DOWN, times=None),
                2.0 * scale,
                done=lambda: all(w.opened for w in self.workers),
            )
            self._phase(
                "recovery",
                "recovery: faults cleared",
                s3.clear_faults,
                1.0 * scale,
                done=lambda: all(w.state == "closed" for w in self.workers),
            )
            self._close_phase()
            for worker in self.workers:
                worker.send("stop")
            self._wait(lambda: all(w.summary is not None for w in self.workers), "summary")
        finally:
            for worker in self.workers:
                worker.close()
        return self._record()

    def _phase(
        self,
        name: str,
        banner: str,
        enter: Callable[[], None],
        minimum: float,
        done: Callable[[], bool] = lambda: True,
    ) -> None:
        # Phases change only between calls: every worker holds (its call in flight ends
        # under the conditions it started in), then the fault changes.
        for worker in self.workers:
            worker.send("hold")
        self._wait(lambda: all(w.held for w in self.workers), "held")
        self._close_phase()
        enter()
        record = PhaseRecord(name, sent_before=self.s3.requests.total)
        record.started = time.monotonic()
        self.phases.append(record)
        for worker in self.workers:
            worker.held = False
            worker.send(f"begin {name}")
        self.console.event(f"==== phase {len(self.phases)}/3  {banner} ====", "bold cyan")
        # At least ``minimum`` seconds, then until ``done()``, at most DEADLINE.
        self._wait(
            lambda: time.monotonic() - record.started >= minimum and done(),
            name,
            quiet=True,
        )

    def _close_phase(self) -> None:
        if self.phases:
            record = self.phases[-1]
            record.seconds = time.monotonic() - record.started
            record.sent = self.s3.requests.total - record.sent_before

    def _wait(self, condition: Callable[[], bool], what: str, *, quiet: bool = False) -> None:
        deadline = time.monotonic() + DEADLINE
        while not condition():
            if time.monotonic() > deadline:
                if quiet:
                    return  # a phase that ran out of time: the verdict will say what is missing
                raise RuntimeError(f"demo --fleet: the workers did not answer ({what})")
            try:
                index, event = self.events.get(timeout=0.1)
            except queue.Empty:
                continue
            self._on_event(self.workers[index], event)

    def _on_event(self, worker: _Worker, event: dict[str, Any]) -> None:
        kind = event.get("ev")
        if kind == "ready":
            worker.ready = True
        elif kind == "held":
            worker.held = True
        elif kind == "summary":
            worker.summary = event
        elif kind == "transition":
            seen = TransitionSeen(
                "s3/us-east-1", event["frm"], event["to"], event["detail"], event["seq"]
            )
            self.transitions.append((worker.index, seen))
            worker.state = seen.to_state.lower()
            worker.opened = worker.opened or seen.to_state == "OPEN"
            style = {"OPEN": "bold red", "HALF_OPEN": "yellow", "CLOSED": "bold green"}
            self.console.event(
                f"worker {worker.index}  {seen.from_state} -> {seen.to_state}: {seen.detail}"
                + (f"  (fleet seq {seen.seq})" if self.shared else ""),
                style[seen.to_state],
            )
        elif kind == "probe":
            self.console.event(f"worker {worker.index}  sends a probe", "yellow")
        elif kind == "log":
            self.console.event(f"worker {worker.index}  log {event.get('msg')}", "red")
        elif kind == "exit" and worker.summary is None:
            raise RuntimeError(f"demo --fleet: worker {worker.index} exited early")

    def _record(self) -> FleetRecord:
        probes: dict[str, int] = {}
        states: dict[int, str] = {}
        for worker in self.workers:
            summary = worker.summary or {}
            states[worker.index] = next(iter(summary.get("states", {}).values()), "none")
            for phase_summary, record in zip(summary.get("phases", []), self.phases):
                record.calls.update(phase_summary["calls"])
                record.retries += phase_summary["retries"]
                probes[record.name] = probes.get(record.name, 0) + phase_summary["probes"]
        return FleetRecord(
            title=self.title,
            shared=self.shared,
            processes=len(self.workers),
            phases=self.phases,
            probes=probes,
            transitions=self.transitions,
            final_states=states,
        )
