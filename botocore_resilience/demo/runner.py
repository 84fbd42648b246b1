"""Plays a scenario in this process: for each run, install the plugin, drive the workload
through the run's phases, print the timeline, and keep what happened as a
:class:`~.tally.RunRecord` for the report."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Optional

from prometheus_client import CollectorRegistry

from .. import __version__
from ..breaker import CircuitState
from ..config import ENV_PREFIX, Settings
from ..errors import CircuitBreakerOpen
from ..exposition import start_metrics_server, stop_metrics_server
from ..install import Installation, install
from . import header, report
from .console import Console, format_duration
from .events import LogWatcher, watching
from .options import DemoOptions
from .scenario import Phase, Run, Scenario
from .tally import MetricsSnapshot, PhaseRecord, RunRecord, Tally, TransitionSeen
from .workload import Workload, make_bucket

__all__ = ["IGNORED", "play"]

# Environment variables the demo does not pass to install(), and why (it says so on screen).
IGNORED = {
    ENV_PREFIX + "ENABLED": "the demo needs the plugin",
    ENV_PREFIX + "BREAKER": "the demo needs the breaker on",
    ENV_PREFIX + "METRICS": "the demo needs the metrics",
    ENV_PREFIX + "METRICS_PORT": "use --metrics-port",
    ENV_PREFIX + "STATE_URL": "the demo's circuits live in its process (see --fleet)",
    "AWS_RETRY_MODE": "the demo sets its own retries",
    "AWS_MAX_ATTEMPTS": "the demo sets its own retries",
}


def play(
    scenario: Scenario,
    options: DemoOptions,
    console: Console,
    s3: Any,
    environ: Mapping[str, str],
) -> int:
    """Every run of ``scenario``, then the report; the exit status (0: all as expected)."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    missing = [name for name in scenario.needs if name not in fields]
    if missing:
        console.print(
            f"The {scenario.name} scenario needs the {', '.join(missing)} setting(s), which "
            f"botocore-resilience {__version__} does not have.",
            "bold red",
        )
        return 2
    bucket = make_bucket(s3)
    records: list[RunRecord] = []
    passed = True
    for number, run in enumerate(scenario.runs):
        s3.reset()
        player = _RunPlayer(scenario, run, options, console, s3, environ)
        record, lines, ok = player.play(bucket, first=number == 0)
        records.append(record)
        console.lines(lines)
        passed = passed and ok
    if len(records) > 1:
        console.lines(report.comparison(records))
        console.print()
        if passed:
            console.print(scenario.ok, "bold green")
        else:
            console.print("FAILED: see the runs above.", "bold red")
    return 0 if passed else 1


class _RunPlayer:
    """One run: its installation, workload, phases and timeline."""

    def __init__(
        self,
        scenario: Scenario,
        run: Run,
        options: DemoOptions,
        console: Console,
        s3: Any,
        environ: Mapping[str, str],
    ) -> None:
        self.scenario = scenario
        self.run = run
        self.options = options
        self.console = console
        self.s3 = s3
        self.environ = environ
        self.scale = options.duration_scale
        self.slow = 2.0 if options.retry_mode == "adaptive" else 1.0
        self.tally = Tally()
        self.registry = CollectorRegistry()
        self.recovery_timeout = round(2.5 * options.duration_scale, 3)
        self.settings = dict(run.settings(options.duration_scale))
        self._lock = threading.Lock()  # guards the four below: workers and log events meet here
        self._states: dict[str, str] = {}
        self._announce_rejection: set[str] = set()
        self._transitions: list[TransitionSeen] = []
        self._unexpected: set[str] = set()
        self._closed_since: Optional[float] = None
        self._last_tick: tuple[int, float] = (0, 0.0)
        self.installation: Optional[Installation] = None

    # -- what phases see (scenario.Stage) -------------------------------------------------------

    def has_opened(self) -> bool:
        with self._lock:
            return any(t.to_state == "OPEN" for t in self._transitions)

    def closed_for(self, seconds: float) -> bool:
        assert self.installation is not None
        breakers = self.installation.breakers().values()
        if not breakers or any(b.state is not CircuitState.CLOSED for b in breakers):
            self._closed_since = None
            return False
        self._closed_since = self._closed_since or time.monotonic()
        return time.monotonic() - self._closed_since >= seconds

    # -- the run ------------------------------------------------------------------------------

    def play(self, bucket: str, *, first: bool) -> tuple[RunRecord, report.Lines, bool]:
        serving = False
        session = self.s3.session()
        # The settings install() is about to read (it raises the same error, if any).
        threshold = Settings.from_env(self._environ(), **self._install_options()).failure_threshold
        watcher = LogWatcher(
            threshold,
            self._on_transition,
            self.tally.retried,
            self._on_warning,
        )
        with watching(watcher):
            try:
                self.installation = install(
                    session,
                    registry=self.registry,
                    environ=self._environ(),
                    **self._install_options(),
                )
                if self.options.metrics_port is not None:
                    serving = start_metrics_server(
                        self.options.metrics_port, self.options.metrics_addr, self.registry
                    )
                return self._play(self.installation, session, bucket, serving, first)
            finally:
                if self.installation is not None:
                    self.installation.uninstall()
                if serving:
                    stop_metrics_server()

    def _environ(self) -> dict[str, str]:
        return {k: v for k, v in self.environ.items() if k not in IGNORED}

    def _install_options(self) -> dict[str, Any]:
        return {
            "recovery_timeout": self.recovery_timeout,
            "retry_mode": self.options.retry_mode,
            "max_attempts": self.options.max_attempts,
            **self.settings,
        }

    def _play(
        self, installation: Installation, session: Any, bucket: str, serving: bool, first: bool
    ) -> tuple[RunRecord, report.Lines, bool]:
        from botocore.config import Config

        settings = installation.settings
        workers = self.options.workers
        if self.scenario.workers_below_threshold:
            workers = max(1, min(workers, settings.failure_threshold - 1))
        client = self.s3.client(
            session=session,
            config=Config(connect_timeout=2, read_timeout=5, max_pool_connections=workers + 2),
        )
        retries = client.meta.config.retries or {}
        attempts = int(retries.get("total_max_attempts", self.options.max_attempts))
        if first:
            self.console.lines(
                header.scenario_header(
                    self.scenario, self.options, self.s3.endpoint_url, bucket, workers
                )
            )
        self.console.lines(
            header.run_header(
                title=self.run.title,
                settings=settings,
                options=self.options,
                overrides=self.settings,
                environ=self.environ,
                ignored=IGNORED,
                mode=retries.get("mode", "legacy"),
                attempts=attempts,
                serving=serving,
                first=first,
            )
        )
        workload = Workload(
            client,
            bucket,
            self.tally,
            workers=workers,
            rate=self.options.rate,
            on_rejected=self._rejected,
            on_unexpected=self._unexpected_error,
        )
        self.console.zero = time.monotonic()
        workload.start()
        try:
            phases = self.run.phases(self)
            for number, phase in enumerate(phases, 1):
                self._run_phase(f"{number}/{len(phases)}", phase, installation)
        finally:
            workload.stop()
        # Calls in flight when the last phase ended count for it, so the table's totals
        # match the metrics'.
        self._tick(installation, self._last_tick, quiet_if_idle=True)
        self._close_phase(installation)
        record = RunRecord(
            title=self.run.title or self.scenario.name,
            phases=self.tally.phases,
            durations=self.tally.durations,
            attempts=attempts,
            failure_threshold=settings.failure_threshold,
            transitions=list(self._transitions),
            final_states={n: b.state.value for n, b in installation.breakers().items()},
            metrics=self._snapshot(settings.metrics_namespace),
        )
        lines = report.phase_table(record.phases) + report.wall_times(record.durations, attempts)
        assert record.metrics is not None
        lines += report.final_metrics(record.metrics)
        judged, passed = report.verdict(
            record,
            expect_open=self.run.expect_open,
            ok=self.run.ok,
            opens_when=_opens_when(settings),
        )
        return record, [*lines, ("", ""), *judged], passed

    # -- the phases ---------------------------------------------------------------------------

    def _run_phase(self, number: str, phase: Phase, installation: Installation) -> None:
        self.tally.hold()  # calls in flight end under the conditions they started in
        self._close_phase(installation)
        phase.enter()
        started = last_tick = time.monotonic()
        tick = (self.s3.requests.total, self._retries(installation))
        record = PhaseRecord(phase.name, sent_before=tick[0], retries_before=tick[1])
        record.started = started
        self.tally.begin(record)
        self.console.event(f"==== phase {number}  {phase.banner} ====", "bold cyan")
        while True:
            time.sleep(0.1)
            now = time.monotonic()
            if now - last_tick >= 1.0:
                tick = self._tick(installation, tick)
                last_tick += 1.0
            elapsed = now - started
            if elapsed >= phase.cap or (elapsed >= phase.minimum and phase.done()):
                break
            calls = record.calls
            self.console.status(
                f"{now - self.console.zero:5.1f}s  phase {number} {phase.name}: success "
                f"{calls['success']}, error {calls['error']}, circuit_open "
                f"{calls['circuit_open']}; circuit {self._circuits(installation)}"
            )
        self._last_tick = self._tick(installation, tick, quiet_if_idle=True)

    def _close_phase(self, installation: Installation) -> None:
        """Settle the latest phase's retries, requests sent and seconds (if there is one)."""
        if self.tally.phases:
            record = self.tally.phases[-1]
            record.seconds = time.monotonic() - record.started
            record.sent = self.s3.requests.total - record.sent_before
            record.retries = self._retries(installation) - record.retries_before

    def _tick(
        self, installation: Installation, since: tuple[int, float], quiet_if_idle: bool = False
    ) -> tuple[int, float]:
        """Print a timeline line for what happened since ``since`` (requests sent, retries)."""
        calls, reasons = self.tally.take_tick()
        now = (self.s3.requests.total, self._retries(installation))
        if quiet_if_idle and not calls and now == since:
            return now
        why = ", ".join(f"{reason} x{n}" for reason, n in reasons.most_common(2))
        self.console.event(
            f"{calls['success']:7d} {calls['error']:5d} {calls['circuit_open']:12d} "
            f"{now[1] - since[1]:7.0f} {now[0] - since[0]:5d}  {self._circuits(installation)}"
            + (f"  (retried after {why})" if why else "")
        )
        return now

    def _circuits(self, installation: Installation) -> str:
        breakers = list(installation.breakers().values())
        if len(breakers) != 1:
            states = Counter(b.state.value for b in breakers)
            return ", ".join(f"{n} {state}" for state, n in sorted(states.items())) or "-"
        breaker = breakers[0]
        if breaker.state is CircuitState.OPEN:
            return f"open (probe in {breaker.retry_after():.1f} s)"
        return str(breaker.state.value)

    def _retries(self, installation: Installation) -> float:
        namespace = installation.settings.metrics_namespace
        return _sample_total(self.registry, f"{namespace}_retry_attempts_total")

    def _snapshot(self, namespace: str) -> MetricsSnapshot:
        operations = f"{namespace}_operations_total"
        circuit_families = {
            f"{namespace}_circuit_breaker_state",
            f"{namespace}_circuit_breaker_transitions_total",
        }
        by_result: dict[str, float] = {}
        by_attempt: Counter[str] = Counter()
        samples: list[str] = []
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == operations:
                    result = sample.labels["result"]
                    by_result[result] = by_result.get(result, 0.0) + sample.value
                elif sample.name == f"{namespace}_retry_attempts_total":
                    by_attempt[sample.labels["attempt"]] += int(sample.value)
                elif sample.name in circuit_families:
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                    samples.append(f"{sample.name}{{{labels}}} {sample.value:g}")
        return MetricsSnapshot(namespace, by_result, dict(by_attempt), samples)

    # -- events from the workload and the plugin's log ----------------------------------------

    def _unexpected_error(self, error: Exception) -> None:
        name = type(error).__name__
        with self._lock:
            if name in self._unexpected:
                return
            self._unexpected.add(name)
        self.console.event(f"unexpected error (counted as error): {name}: {error}", "red")

    def _rejected(self, operation: str, rejection: CircuitBreakerOpen, seconds: float) -> None:
        with self._lock:
            if rejection.circuit_name not in self._announce_rejection:
                return
            self._announce_rejection.discard(rejection.circuit_name)
        self.console.event(
            f"fail fast: {operation} raised CircuitBreakerOpen in {format_duration(seconds)}, "
            f"nothing sent; retry_after={rejection.retry_after:.1f} s",
            "yellow",
        )

    def _on_transition(self, seen: TransitionSeen) -> None:
        with self._lock:
            self._transitions.append(seen)
            if seen.to_state == "OPEN":
                self._announce_rejection.add(seen.circuit)
        style = {"OPEN": "bold red", "HALF_OPEN": "yellow", "CLOSED": "bold green"}[seen.to_state]
        self.console.event(
            f"circuit {seen.circuit}  {seen.from_state} -> {seen.to_state}: {seen.detail}", style
        )

    def _on_warning(self, message: str) -> None:
        self.console.event(f"log {message}", "red")


def _opens_when(settings: Settings) -> str:
    words = f"after {settings.failure_threshold} consecutive failed calls"
    rate = getattr(settings, "failure_rate", None)
    if rate is not None:
        words += f", or at {rate:g}% failed calls over {getattr(settings, 'window', 0):g} s"
    return words


def _sample_total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
