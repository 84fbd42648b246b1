"""``demo --fleet N``: N worker processes against one local S3, on their own and then
sharing their circuits through a local ``redis-server``.

Each run of :data:`~.scenario.FLEET` starts N :mod:`~.fleet_worker` processes (one calling
thread each) and takes them through its phases, changing phases only between calls
(every worker holds, the fault changes, every worker begins the next phase). Without a
store each process counts ``failure_threshold`` failed calls of its own before it fails
fast, and probes on its own; sharing the store, the fleet opens after
``failure_threshold`` failed calls in all, lets one probe at a time through (counted
where it is sent, by its probe permit) and closes in every process together.

The demo starts its own ``redis-server`` (:mod:`.redis_server`) when one is installed,
and says what is missing otherwise (exit status 2).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, TextIO

from ..config import Settings
from . import report
from .console import Console
from .options import DemoOptions
from .redis_server import DEADLINE, RedisServer, missing_parts
from .runner import IGNORED
from .scenario import FLEET, Phase, Run
from .tally import FleetRecord, PhaseRecord, TransitionSeen
from .workload import make_bucket

__all__ = ["play_fleet"]


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
        for run in FLEET.runs:
            s3.reset()
            url = store.url if run.shared_store else None
            player = _FleetRun(run, options, console, s3, environ, bucket, size, url)
            try:
                record = player.play()
            except RuntimeError as error:  # a worker died or stopped answering
                console.close()
                print(str(error), file=stderr)
                return 2
            records.append(record)
            console.lines(report.phase_table(record.phases))
            lines, ok = report.fleet_verdict(record, ok=run.ok)
            console.lines([("", ""), *lines])
            passed = passed and ok
        console.lines(report.fleet_comparison(records, base.failure_threshold))
        console.print()
        if passed:
            console.print(FLEET.ok, "bold green")
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
    out(f"botocore-resilience {__version__} demo: {FLEET.title} ({size})", "bold")
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
    for line in FLEET.story:
        out(f"  story     {line}")


class _FleetRun:
    """One run of the fleet: its workers, phases and timeline (a :class:`~.scenario.Stage`)."""

    def __init__(
        self,
        run: Run,
        options: DemoOptions,
        console: Console,
        s3: Any,
        environ: Mapping[str, str],
        bucket: str,
        size: int,
        state_url: Optional[str],
    ) -> None:
        self.run = run
        self.console = console
        self.s3 = s3
        self.scale = options.duration_scale
        self.slow = 2.0 if options.retry_mode == "adaptive" else 1.0
        self.title = f"{size} {run.title}"
        self.shared = state_url is not None
        self.events: queue.Queue[Any] = queue.Queue()
        self.transitions: list[tuple[int, TransitionSeen]] = []
        self.phases: list[PhaseRecord] = []
        install: dict[str, Any] = {
            "recovery_timeout": round(2.5 * self.scale, 3),
            "retry_mode": options.retry_mode,
            "max_attempts": options.max_attempts,
            **run.settings(self.scale),
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

    # -- what phases see (scenario.Stage) -------------------------------------------------------

    def has_opened(self) -> bool:
        """Whether every process has seen its circuit open."""
        return all(w.opened for w in self.workers)

    def closed_for(self, seconds: float) -> bool:
        """Whether every process's circuit is closed (``seconds`` is not waited: the phase's
        minimum does that)."""
        return all(w.state == "closed" for w in self.workers)

    # -- the run --------------------------------------------------------------------------------

    def play(self) -> FleetRecord:
        console = self.console
        console.print()
        console.print(f"==== {self.title} ====", "bold cyan")
        try:
            self._wait(lambda: all(w.ready for w in self.workers), "ready")
            console.zero = time.monotonic()
            phases = self.run.phases(self)
            for number, phase in enumerate(phases, 1):
                self._run_phase(f"{number}/{len(phases)}", phase)
            self._close_phase()
            for worker in self.workers:
                worker.send("stop")
            self._wait(lambda: all(w.summary is not None for w in self.workers), "summary")
        finally:
            for worker in self.workers:
                worker.close()
        return self._record()

    def _run_phase(self, number: str, phase: Phase) -> None:
        # Phases change only between calls: every worker holds (its call in flight ends
        # under the conditions it started in), then the fault changes.
        for worker in self.workers:
            worker.send("hold")
        self._wait(lambda: all(w.held for w in self.workers), "held")
        self._close_phase()
        phase.enter()
        record = PhaseRecord(phase.name, sent_before=self.s3.requests.total)
        record.started = time.monotonic()
        self.phases.append(record)
        for worker in self.workers:
            worker.held = False
            worker.send(f"begin {phase.name}")
        self.console.event(f"==== phase {number}  {phase.banner} ====", "bold cyan")

        def over() -> bool:
            elapsed = time.monotonic() - record.started
            return elapsed >= phase.cap or (elapsed >= phase.minimum and phase.done())

        self._wait(over, phase.name, limit=phase.cap + DEADLINE)

    def _close_phase(self) -> None:
        if self.phases:
            record = self.phases[-1]
            record.seconds = time.monotonic() - record.started
            record.sent = self.s3.requests.total - record.sent_before

    def _wait(self, condition: Callable[[], bool], what: str, limit: float = DEADLINE) -> None:
        """Print the workers' events until ``condition()``; raise if that takes ``limit`` s."""
        deadline = time.monotonic() + limit
        while not condition():
            if time.monotonic() > deadline:
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
