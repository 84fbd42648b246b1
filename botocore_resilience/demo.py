"""``python -m botocore_resilience demo``: watch a local S3 go down and come back.

A local S3 (moto over real HTTP on 127.0.0.1) serves a bucket, and a few threads call
``PutObject``/``GetObject``/``HeadObject`` on it at a steady rate through a session with
the plugin installed, while S3 goes through four phases::

    healthy -> outage 1: 503 SlowDown to every request -> outage 2: connection refused
    (server stopped) -> recovery (restarted on the same port, faults cleared)

The timeline shows phase banners, a line per second (calls by result, retries, requests
that reached S3, circuit state), every circuit state change and the first fast-fail
rejection after each opening; then a table per phase, the wall time of a rejected call
against a failed one, and the final metrics.

Nothing is faked: retries are botocore's, with its real jittered backoff, and the breaker
is the plugin's, with a short ``recovery_timeout`` so the outage fits in seconds. State
changes come from the plugin's log lines (logger ``botocore_resilience``), counts from
its Prometheus metrics. Exit status 0, or 1 if the circuit never opened or never closed
again.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TextIO

from prometheus_client import CollectorRegistry

from . import __version__
from .breaker import CircuitState
from .config import ENV_PREFIX
from .errors import CircuitBreakerOpen, ConfigurationError
from .exposition import start_metrics_server, stop_metrics_server
from .install import Installation, install

__all__ = ["DemoOptions", "run"]

RESULTS = ("success", "error", "circuit_open")
OPERATIONS = ("PutObject", "GetObject", "HeadObject")
KEYS = tuple(f"demo/object-{i}" for i in range(10))
PAYLOAD = b"hello from botocore-resilience\n"

# Environment variables the demo does not pass to install(), and why (it says so on screen).
_IGNORED = {
    ENV_PREFIX + "ENABLED": "the demo needs the plugin",
    ENV_PREFIX + "BREAKER": "the demo needs the breaker on",
    ENV_PREFIX + "METRICS": "the demo needs the metrics",
    ENV_PREFIX + "METRICS_PORT": "use --metrics-port",
    "AWS_RETRY_MODE": "the demo sets its own retries",
    "AWS_MAX_ATTEMPTS": "the demo sets its own retries",
}

# The plugin's log lines (contract section 7) that the timeline is made of.


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo; the defaults are ``python -m botocore_resilience demo``."""

    duration_scale: float = 1.0
    """Multiplies phase lengths and the recovery timeout."""
    workers: int = 4
    rate: float = 5.0
    """Calls per second per worker thread."""
    retry_mode: str = "standard"
    max_attempts: int = 3
    metrics_port: Optional[int] = None
    metrics_addr: str = "127.0.0.1"
    color: Optional[bool] = None
    """``None``: colours on a terminal, unless ``NO_COLOR`` is set."""


def run(
    options: DemoOptions = DemoOptions(),
    *,
    stdout: TextIO,
    stderr: Optional[TextIO] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> int:
    """Run the demo, printing to ``stdout`` (errors to ``stderr``); return the exit status:
    0, 1 if the circuit never opened or never closed again, 2 if the demo could not start."""
    environ = os.environ if environ is None else environ
    stderr = sys.stderr if stderr is None else stderr
    live = _isatty(stdout) and environ.get("TERM") != "dumb"
    color = live and not environ.get("NO_COLOR") if options.color is None else options.color
    console = Console(stdout, color=color, live=live)
    try:
        from .testing import LocalS3

        s3 = LocalS3().start()
    except ImportError as error:
        print(f"The demo needs moto's server ({error}).", file=stderr)
        print("Install it with: python3 -m pip install 'botocore-resilience[demo]'", file=stderr)
        return 2
    try:
        return Demo(options, console, s3, environ).run()
    except ConfigurationError as error:
        console.close()
        print(f"Cannot install the plugin: {error}", file=stderr)
        return 2
    except KeyboardInterrupt:
        console.print("interrupted", "red")
        return 130
    finally:
        console.close()
        s3.stop()


# -- output -----------------------------------------------------------------------------------


class Console:
    """Timeline lines and, on a terminal, a live status line under them. Thread-safe."""

    _STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}

    def __init__(self, stream: TextIO, *, color: bool, live: bool) -> None:
        self._stream = stream
        self._color = color
        self._live = live
        self._lock = threading.Lock()
        self._status = ""
        self._spinner = itertools.cycle("|/-\\")
        self.zero = time.monotonic()
        """Where timeline timestamps count from."""

    def paint(self, text: str, style: str) -> str:
        if not self._color or not style:
            return text
        return f"\033[{';'.join(self._STYLES[s] for s in style.split())}m{text}\033[0m"

    def print(self, text: str = "", style: str = "") -> None:
        with self._lock:
            self._write(self.paint(text, style) + "\n")

    def event(self, text: str, style: str = "") -> None:
        """A timeline line: seconds since :attr:`zero`, then ``text``."""
        self.print(f"{time.monotonic() - self.zero:6.1f}s  " + self.paint(text, style))

    def status(self, text: str) -> None:
        """Redraw the live status line (on a terminal; elsewhere the timeline shows progress)."""
        if self._live:
            with self._lock:
                self._status = f"{next(self._spinner)} {text}"
                self._write("")

    def close(self) -> None:
        with self._lock:
            self._status = ""
            self._write("")

    def _write(self, text: str) -> None:
        if self._live:
            self._stream.write("\r\033[K")  # the old status line goes...
        self._stream.write(text)
        if self._live and self._status:  # ...and comes back under the new text
            width = shutil.get_terminal_size().columns - 1
            self._stream.write(self.paint(self._status[:width], "dim"))
        self._stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1.0 else f"{seconds:.2f} s"


# -- what happened ----------------------------------------------------------------------------


@dataclass
class PhaseRecord:
    """One phase's calls by result; ``retries``, ``sent`` and ``seconds`` count from the
    ``*_before`` baselines until the phase is closed."""

    name: str
    calls: Counter[str] = field(default_factory=Counter)
    retries: float = 0.0
    sent: int = 0
    seconds: float = 0.0
    retries_before: float = 0.0
    sent_before: int = 0
    started: float = 0.0


class Tally:
    """Calls by result (per phase and per tick), their wall times, retry reasons. Thread-safe.

    A call counts for the phase in which it *started* (:meth:`start` says which), and
    phases change only between calls: :meth:`hold` keeps new calls from starting and
    waits for those in flight, the fault changes, and :meth:`begin` lets calls start
    again. So no call meets two phases' conditions: one started while S3 was healthy
    never sees the storm, one started while S3 was down never succeeds after recovery.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.phases: list[PhaseRecord] = []
        self.durations: dict[str, list[float]] = {result: [] for result in RESULTS}
        self._tick: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        self._held = True  # no call starts before the first phase
        self._in_flight = 0

    def hold(self, timeout: float = 30.0) -> bool:
        """Keep new calls from starting; wait (at most ``timeout`` s) for those in flight.

        Returns whether they all finished."""
        with self._lock:
            self._held = True
            return self._lock.wait_for(lambda: self._in_flight == 0, timeout)

    def begin(self, record: PhaseRecord) -> None:
        """From now on, calls start, and count for ``record``."""
        with self._lock:
            self.phases.append(record)
            self._held = False
            self._lock.notify_all()

    def start(self) -> PhaseRecord:
        """A call is about to start (waiting while phases change): the phase it counts for."""
        with self._lock:
            self._lock.wait_for(lambda: not self._held)
            self._in_flight += 1
            return self.phases[-1]

    def record(self, phase: PhaseRecord, result: str, seconds: float) -> None:
        """A call that :meth:`start` gave ``phase`` ended with ``result``."""
        with self._lock:
            phase.calls[result] += 1
            self.durations[result].append(seconds)
            self._tick[result] += 1
            self._in_flight -= 1
            self._lock.notify_all()

    def retried(self, reason: str) -> None:
        with self._lock:
            self._reasons[reason] += 1

    def take_tick(self) -> tuple[Counter[str], Counter[str]]:
        """Calls by result, and retry reasons, since the previous call."""
        with self._lock:
            taken = self._tick, self._reasons
            self._tick, self._reasons = Counter(), Counter()
            return taken


class LogWatcher(logging.Handler):
    """Turns the plugin's log lines into timeline events: transitions, retries, warnings."""

    def __init__(
        self,
        on_transition: Callable[[str, str, str], None],
        on_retry: Callable[[str], None],
        on_warning: Callable[[str], None],
    ) -> None:
        super().__init__(logging.INFO)
        self._on_transition = on_transition
        self._on_retry = on_retry
        self._on_warning = on_warning

    def emit(self, record: logging.LogRecord) -> None:
        # The plugin's records carry structured ``transition`` and ``retry`` attributes:
        # no parsing of the wording, which is for people.
        try:
            transition = getattr(record, "transition", None)
            retry = getattr(record, "retry", None)
            if transition is not None:
                state = transition.to_state.name
                if transition.to_state is CircuitState.CLOSED:
                    detail = transition.cause
                else:  # the words after the state: "after 5 consecutive failed calls ..."
                    detail = record.getMessage().split(f" {state}", 1)[-1].lstrip(" :")
                self._on_transition(transition.circuit_name, state, detail)
            elif retry is not None:
                self._on_retry(retry.reason)
            elif record.levelno >= logging.WARNING:
                self._on_warning(f"{record.levelname}: {record.getMessage()}")
        except Exception:
            self.handleError(record)


def _sample_total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


# -- the demo ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    name: str
    banner: str
    enter: Callable[[], None]
    minimum: float
    """The phase lasts at least this many seconds, then until ``done()``, at most ``cap``."""
    done: Callable[[], bool]
    cap: float


class Demo:
    def __init__(
        self, options: DemoOptions, console: Console, s3: Any, environ: Mapping[str, str]
    ) -> None:
        self.options = options
        self.console = console
        self.s3 = s3
        self.environ = environ
        self.tally = Tally()
        self.registry = CollectorRegistry()
        self.recovery_timeout = round(2.5 * options.duration_scale, 3)
        self.attempts = options.max_attempts
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the four below: workers and log events meet here
        self._states: dict[str, str] = {}
        self._announce_rejection: set[str] = set()
        self._opened = False
        self._unexpected: set[str] = set()
        self._closed_since: Optional[float] = None
        self._last_tick: tuple[int, float] = (0, 0.0)

    def run(self) -> int:
        logger = logging.getLogger("botocore_resilience")
        watcher = LogWatcher(self._on_transition, self.tally.retried, self._on_warning)
        saved = logger.level, logger.propagate
        logger.addHandler(watcher)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the timeline says it all; no second copy via the root logger
        installation: Optional[Installation] = None
        serving = False
        session = self.s3.session()
        try:
            installation = install(
                session,
                registry=self.registry,
                environ={k: v for k, v in self.environ.items() if k not in _IGNORED},
                recovery_timeout=self.recovery_timeout,
                retry_mode=self.options.retry_mode,
                max_attempts=self.options.max_attempts,
            )
            if self.options.metrics_port is not None:
                serving = start_metrics_server(
                    self.options.metrics_port, self.options.metrics_addr, self.registry
                )
            return self._run(installation, session, serving)
        finally:
            self._stop.set()
            if installation is not None:
                installation.uninstall()
            if serving:
                stop_metrics_server()
            logger.removeHandler(watcher)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]

    def _run(self, installation: Installation, session: Any, serving: bool) -> int:
        from botocore.config import Config

        workers = self.options.workers
        client = self.s3.client(
            session=session,
            config=Config(connect_timeout=2, read_timeout=5, max_pool_connections=workers + 2),
        )
        bucket = self.s3.create_bucket(f"botocore-resilience-demo-{uuid.uuid4().hex[:8]}")
        setup = self.s3.client()  # a session without the plugin: setup is not part of the show
        for key in KEYS:
            setup.put_object(Bucket=bucket, Key=key, Body=PAYLOAD)
        self._header(installation, client, bucket, serving)

        threads = [
            threading.Thread(target=self._work, args=(i, client, bucket), daemon=True)
            for i in range(workers)
        ]
        self.console.zero = time.monotonic()
        for thread in threads:
            thread.start()
        phases = self._phases(installation)
        for number, phase in enumerate(phases, 1):
            self._run_phase(f"{number}/{len(phases)}", phase, installation)
        self._stop.set()
        for thread in threads:
            thread.join(timeout=10)
        # Calls in flight when the last phase ended count for it, so the table's totals
        # match the metrics'.
        self._tick(installation, self._last_tick, quiet_if_idle=True)
        self._close_phase(installation)
        self._report(installation)
        return self._verdict(installation)

    # -- the header ---------------------------------------------------------------------------

    def _header(self, installation: Installation, client: Any, bucket: str, serving: bool) -> None:
        settings, options, out = installation.settings, self.options, self.console.print
        retries = client.meta.config.retries or {}
        mode = retries.get("mode", "legacy")
        self.attempts = int(retries.get("total_max_attempts", self.attempts))
        scope = {"service": "service and region", "operation": "operation", "bucket": "bucket"}
        indent = " " * 12
        out(f"botocore-resilience {__version__} demo: a local S3 goes down and comes back", "bold")
        out()
        out(f"  S3        moto in this process, {self.s3.endpoint_url}, bucket {bucket}")
        out(
            f"  workload  {options.workers} threads calling {', '.join(OPERATIONS)} in turn, "
            f"{options.rate:g} calls/s each"
        )
        out(
            "  plugin    botocore_resilience.install(session, registry=registry, "
            f"recovery_timeout={self.recovery_timeout:g},"
        )
        out(f'{indent}    retry_mode="{options.retry_mode}", max_attempts={options.max_attempts})')
        out(
            f"{indent}one circuit per {scope[settings.scope]}: {settings.failure_threshold} "
            "consecutive failed calls open it;"
        )
        out(
            f"{indent}it rejects calls for {settings.recovery_timeout:g} s, then lets "
            f"{settings.half_open_max_calls} probe at a time through; "
            f"{settings.success_threshold} good probes close it"
        )
        for option, source in settings.sources.items():
            env = ENV_PREFIX + option.upper()
            if source == "environment":
                out(f"{indent}from the environment: {env}={self.environ.get(env)}")
        for env, why in _IGNORED.items():
            if self.environ.get(env, "").strip():
                out(f"{indent}ignored: {env}={self.environ[env]} ({why})")
        out(
            f"  retries   botocore {mode} mode, {self.attempts} attempts per call, with real "
            "jittered backoff (random,"
        )
        out(f"{indent}up to 1 s before the first retry, up to 2 s before the second)")
        if mode == "adaptive":
            out(f"{indent}after SlowDown, adaptive mode also slows the client down (to 0.5")
            out(f"{indent}requests/s at worst): failed calls take longer, the circuit opens later")
        elif mode == "standard":
            out(f"{indent}(the plugin's default, adaptive mode, also slows a client down after")
            out(f"{indent}SlowDown: the outage takes longer to watch; try --retry-mode adaptive)")
        if serving:
            out(f"  metrics   serving {self._metrics_url()} while the demo runs")
        elif options.metrics_port is not None:
            out(f"  metrics   could not serve /metrics on port {options.metrics_port} (see above)")
        else:
            out("  metrics   a private registry, shown at the end (--metrics-port PORT serves it)")
        out()
        out("  Every second: calls finished by result, retries made, requests that reached S3.")
        out()
        out(
            f"{'time':>7}  {'success':>7} {'error':>5} {'circuit_open':>12} {'retries':>7} "
            f"{'sent':>5}  circuit",
            "bold",
        )

    def _metrics_url(self) -> str:
        addr = self.options.metrics_addr
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(addr, addr)
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        return f"http://{host}:{self.options.metrics_port}/metrics"

    # -- the phases ---------------------------------------------------------------------------

    def _phases(self, installation: Installation) -> list[Phase]:
        from .testing import SLOW_DOWN

        scale, s3 = self.options.duration_scale, self.s3
        # How long a phase may wait for its condition: scaled like everything else, but
        # never below what botocore's real backoff needs (a failed call takes up to 3 s,
        # and a probe sent in the outage may still be backing off when S3 is back).
        # Adaptive mode's rate limiter makes failed calls slower still.
        slow = 2.0 if self.options.retry_mode == "adaptive" else 1.0

        def cap(minimum: float, seconds: float, floor: float) -> float:
            return max(minimum * scale, max(seconds * scale, floor) * slow)

        def storm() -> None:
            s3.inject(SLOW_DOWN, times=None)

        def recover() -> None:
            s3.clear_faults()
            s3.start()

        def closed_for_a_while() -> bool:
            breakers = installation.breakers().values()
            if not breakers or any(b.state is not CircuitState.CLOSED for b in breakers):
                self._closed_since = None
                return False
            self._closed_since = self._closed_since or time.monotonic()
            return time.monotonic() - self._closed_since >= 2.0 * scale

        return [
            Phase(
                "healthy",
                "healthy: S3 answers every request",
                enter=lambda: None,
                minimum=3.0 * scale,
                done=lambda: True,
                cap=3.0 * scale,
            ),
            Phase(
                "outage: 503 SlowDown",
                "outage, part 1: S3 answers every request with 503 SlowDown (a sticky fault)",
                enter=storm,
                minimum=6.0 * scale,
                done=self._has_opened,
                cap=cap(6.0, 8.0, 4.0),
            ),
            Phase(
                "outage: connection refused",
                "outage, part 2: S3 is down, connections are refused (server stopped)",
                enter=s3.stop,
                minimum=5.0 * scale,
                done=self._has_opened,
                cap=cap(5.0, 7.0, 4.0),
            ),
            Phase(
                "recovery",
                f"recovery: S3 is back on port {s3.port}, faults cleared",
                enter=recover,
                minimum=2.0 * scale,
                done=closed_for_a_while,
                cap=cap(2.0, 10.0, 6.0),
            ),
        ]

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

    def _has_opened(self) -> bool:
        with self._lock:
            return self._opened

    # -- the workload -------------------------------------------------------------------------

    def _work(self, index: int, client: Any, bucket: str) -> None:
        rng = random.Random(index)
        interval = 1.0 / self.options.rate
        operations = itertools.cycle(OPERATIONS[index % 3 :] + OPERATIONS[: index % 3])
        next_call = time.monotonic() + rng.random() * interval  # spread the threads out
        while not self._stop.wait(max(0.0, next_call - time.monotonic())):
            operation = next(operations)
            phase = self.tally.start()
            started = time.perf_counter()
            try:
                _call(client, operation, bucket, rng.choice(KEYS))
                result = "success"
            except CircuitBreakerOpen as rejection:
                result = "circuit_open"
                self._rejected(operation, rejection, time.perf_counter() - started)
            except Exception as error:
                result = "error"
                self._check_expected(error)
            self.tally.record(phase, result, time.perf_counter() - started)
            next_call = max(next_call + interval, time.monotonic())

    def _check_expected(self, error: Exception) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        name = type(error).__name__
        if isinstance(error, (BotoCoreError, ClientError)):
            return
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
            f"fail fast: {operation} raised CircuitBreakerOpen in {_duration(seconds)}, "
            f"nothing sent; retry_after={rejection.retry_after:.1f} s",
            "yellow",
        )

    # -- events from the plugin's log ---------------------------------------------------------

    def _on_transition(self, name: str, state: str, detail: str) -> None:
        with self._lock:
            previous = self._states.get(name, "CLOSED")
            self._states[name] = state
            if state == "OPEN":
                self._announce_rejection.add(name)
                self._opened = True
        style = {"OPEN": "bold red", "HALF_OPEN": "yellow", "CLOSED": "bold green"}[state]
        self.console.event(f"circuit {name}  {previous} -> {state}: {detail}", style)

    def _on_warning(self, message: str) -> None:
        self.console.event(f"log {message}", "red")

    # -- the end --------------------------------------------------------------------------------

    def _report(self, installation: Installation) -> None:
        out = self.console.print
        header = ("phase", *RESULTS, "retries", "sent", "seconds")
        rows: list[tuple[str, ...]] = [header]
        total = PhaseRecord("total")
        for number, phase in enumerate(self.tally.phases, 1):
            total.calls.update(phase.calls)
            total.retries += phase.retries
            total.sent += phase.sent
            total.seconds += phase.seconds
            rows.append(_row(f"{number} {phase.name}", phase))
        rows.append(_row("total", total))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        out()
        out("Calls by result, per phase", "bold")
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
            out("  " + "  ".join(cells))
        out("  (sent: HTTP requests that reached S3, retries included)")

        out()
        out(f"{'Wall time of one call':<32}{'median':>10}{'max':>12}", "bold")
        labels = {
            "success": "success",
            "error": f"error (after {self.attempts} attempts)",
            "circuit_open": "circuit_open (rejected)",
        }
        for result, label in labels.items():
            times = self.tally.durations[result]
            if times:
                median, longest = _duration(statistics.median(times)), _duration(max(times))
            else:
                median = longest = "-"
            out(f"  {label:<30}{median:>10}{longest:>12}")
        failed, rejected = self.tally.durations["error"], self.tally.durations["circuit_open"]
        if failed and rejected:
            ratio = statistics.median(failed) / max(statistics.median(rejected), 1e-9)
            out(
                f"  A rejected call came back ~{ratio:,.0f}x sooner than a failed one, "
                "and sent nothing."
            )
        self._final_metrics(installation.settings.metrics_namespace)

    def _final_metrics(self, namespace: str) -> None:
        out = self.console.print
        out()
        out("Final metrics (what Prometheus would scrape)", "bold")
        operations = f"{namespace}_operations_total"
        by_result = ", ".join(
            f"{result} {_sample_total(self.registry, operations, result=result):.0f}"
            for result in RESULTS
        )
        out(f"  {operations}, summed by result: {by_result}")
        circuit_families = {
            f"{namespace}_circuit_breaker_state",
            f"{namespace}_circuit_breaker_transitions_total",
        }
        attempts: Counter[str] = Counter()
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == f"{namespace}_retry_attempts_total":
                    attempts[sample.labels["attempt"]] += int(sample.value)
                elif sample.name in circuit_families:
                    labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                    out(f"  {sample.name}{{{labels}}} {sample.value:g}")
        by_attempt = ", ".join(f'attempt="{a}" {n}' for a, n in sorted(attempts.items()))
        out(f"  {namespace}_retry_attempts_total, summed by attempt: {by_attempt or 'none'}")

    def _verdict(self, installation: Installation) -> int:
        opened = _sample_total(
            self.registry,
            f"{installation.settings.metrics_namespace}_circuit_breaker_transitions_total",
            to_state="open",
        )
        breakers = installation.breakers()
        closed = bool(breakers) and all(b.state is CircuitState.CLOSED for b in breakers.values())
        out = self.console.print
        out()
        if opened and closed:
            out(
                "OK: the circuit opened in the outage, failed fast while open, probed, and "
                "closed again once S3 was back.",
                "bold green",
            )
            return 0
        if not opened:
            threshold = installation.settings.failure_threshold
            out(
                f"FAILED: the circuit never opened (it opens after {threshold} consecutive "
                "failed calls).",
                "bold red",
            )
        if not closed:
            states = ", ".join(f"{n} {b.state.value}" for n, b in breakers.items()) or "none"
            out(f"FAILED: the circuit did not close again (circuits: {states}).", "bold red")
        return 1


def _row(name: str, phase: PhaseRecord) -> tuple[str, ...]:
    counts = (str(phase.calls[result]) for result in RESULTS)
    return (name, *counts, f"{phase.retries:.0f}", str(phase.sent), f"{phase.seconds:.1f}")


def _call(client: Any, operation: str, bucket: str, key: str) -> None:
    if operation == "PutObject":
        client.put_object(Bucket=bucket, Key=key, Body=PAYLOAD)
    elif operation == "GetObject":
        client.get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        client.head_object(Bucket=bucket, Key=key)
