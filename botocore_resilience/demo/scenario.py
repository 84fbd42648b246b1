"""What the demo's S3 goes through: the scenarios, each a list of runs of a few phases.

A scenario is one or more *runs* (one installation of the plugin each, with its own
settings), and a run is a list of :class:`Phase` objects: what to do to S3 when the phase
begins, and how long it lasts. Adding a scenario is one function here and one entry in
:data:`SCENARIOS`; the runner, the workload and the report stay as they are.

* ``outage`` (the default): healthy -> 503 SlowDown to every request -> connection
  refused (server stopped) -> recovery. The circuit opens, fails fast, probes and closes.
* ``partial``: three keys in ten answer 503 (30 % of calls fail), run twice: with
  consecutive counting only, which never opens (no five failures in a row), and with
  ``failure_rate``, which opens, fails fast, probes and closes once S3 is whole again.
* :data:`FLEET` (``--fleet N``, played by :mod:`.fleet` in N processes): healthy -> 503
  SlowDown -> recovery, run with each process on its own and then sharing one store.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .workload import KEYS

__all__ = ["SCENARIOS", "Phase", "Run", "Scenario", "Stage"]


class Stage(Protocol):
    """What phases see of the run they belong to."""

    s3: Any
    """The :class:`~botocore_resilience.testing.LocalS3` the workload calls."""
    scale: float
    """``DemoOptions.duration_scale``: multiplies every length."""
    slow: float
    """How much longer than usual a failed call takes (2 in adaptive mode, else 1)."""

    def has_opened(self) -> bool:
        """Whether a circuit has opened in this run."""

    def closed_for(self, seconds: float) -> bool:
        """Whether every circuit has been closed for ``seconds`` (scaled by the caller)."""


@dataclass(frozen=True)
class Phase:
    name: str
    banner: str
    enter: Callable[[], None]
    minimum: float
    """The phase lasts at least this many seconds, then until ``done()``, at most ``cap``."""
    done: Callable[[], bool]
    cap: float


@dataclass(frozen=True)
class Run:
    """One installation of the plugin and the phases its workload goes through."""

    title: str
    """Says how this run differs from the others (empty for a scenario of one run)."""
    phases: Callable[[Stage], list[Phase]]
    expect_open: bool
    """Whether the circuit should open (and close again by the end) or never open."""
    ok: str
    """The verdict line when the run went as expected."""
    settings: Callable[[float], Mapping[str, Any]] = lambda scale: {}
    """``install()`` keywords of this run, from the duration scale."""
    shared_store: bool = False
    """For a fleet: whether its processes share their circuits through the demo's store."""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    story: tuple[str, ...]
    """Lines under the header that say what happens to S3."""
    runs: tuple[Run, ...]
    ok: str = ""
    """The last line when every run went as expected (a scenario of several runs)."""
    workers_below_threshold: bool = False
    """At most ``failure_threshold - 1`` threads, so no run of failures can reach it by chance."""
    needs: tuple[str, ...] = field(default=())
    """Settings that this version of the plugin must have."""


def _cap(stage: Stage, minimum: float, seconds: float, floor: float) -> float:
    # How long a phase may wait for its condition: scaled like everything else, but never
    # below what botocore's real backoff needs (a failed call takes up to 3 s, and a probe
    # sent in the outage may still be backing off when S3 is back). Adaptive mode's rate
    # limiter makes failed calls slower still.
    return max(minimum * stage.scale, max(seconds * stage.scale, floor) * stage.slow)


def _healthy(stage: Stage, seconds: float) -> Phase:
    return Phase(
        "healthy",
        "healthy: S3 answers every request",
        enter=lambda: None,
        minimum=seconds * stage.scale,
        done=lambda: True,
        cap=seconds * stage.scale,
    )


def _recovery(stage: Stage, banner: str) -> Phase:
    def recover() -> None:
        stage.s3.clear_faults()
        if not stage.s3.running:
            stage.s3.start()

    return Phase(
        "recovery",
        banner,
        enter=recover,
        minimum=2.0 * stage.scale,
        done=lambda: stage.closed_for(2.0 * stage.scale),
        cap=_cap(stage, 2.0, 10.0, 6.0),
    )


# -- outage: S3 goes down and comes back ------------------------------------------------------


def _outage_phases(stage: Stage) -> list[Phase]:
    from ..testing import SLOW_DOWN

    s3 = stage.s3
    return [
        _healthy(stage, 3.0),
        Phase(
            "outage: 503 SlowDown",
            "outage, part 1: S3 answers every request with 503 SlowDown (a sticky fault)",
            enter=lambda: s3.inject(SLOW_DOWN, times=None),
            minimum=6.0 * stage.scale,
            done=stage.has_opened,
            cap=_cap(stage, 6.0, 8.0, 4.0),
        ),
        Phase(
            "outage: connection refused",
            "outage, part 2: S3 is down, connections are refused (server stopped)",
            enter=s3.stop,
            minimum=5.0 * stage.scale,
            done=stage.has_opened,
            cap=_cap(stage, 5.0, 7.0, 4.0),
        ),
        _recovery(stage, f"recovery: S3 is back on port {s3.port}, faults cleared"),
    ]


OUTAGE = Scenario(
    "outage",
    "a local S3 goes down and comes back",
    (),
    (
        Run(
            "",
            _outage_phases,
            expect_open=True,
            ok="OK: the circuit opened in the outage, failed fast while open, probed, and "
            "closed again once S3 was back.",
        ),
    ),
)


# -- partial: a share of calls fails ----------------------------------------------------------

FAILING_KEYS = (KEYS[0], KEYS[3], KEYS[6])
"""Three keys in ten: each thread takes the keys in turn, so 30 % of its calls fail and
never two in a row; with fewer threads than ``failure_threshold``, no run of failures
across threads reaches it either."""

PARTIAL_RATE = 20.0
"""The ``failure_rate`` of the second run: below the 30 % that fail, well above zero."""


def _partial_phases(stage: Stage, *, until_open: bool) -> list[Phase]:
    from ..testing import SLOW_DOWN

    s3 = stage.s3

    def partial_outage() -> None:
        for key in FAILING_KEYS:
            s3.inject(SLOW_DOWN, times=None, key=key)

    return [
        _healthy(stage, 1.0),
        Phase(
            "partial outage: 30% fail",
            f"partial outage: {len(FAILING_KEYS)} keys in {len(KEYS)} answer 503 SlowDown "
            "(30% of calls fail, never two in a row on one thread)",
            enter=partial_outage,
            # Long enough for the healthy phase's calls to leave the rate's window, and
            # for the circuit that opens to fail fast for a while before S3 recovers.
            minimum=max(6.0, 8.0 * stage.scale),
            done=stage.has_opened if until_open else lambda: True,
            cap=_cap(stage, 8.0, 16.0, 12.0),
        ),
        _recovery(stage, "recovery: every key answers again, faults cleared"),
    ]


def _rate_settings(scale: float) -> Mapping[str, Any]:
    # A short window: the healthy phase's calls leave it soon, and it still holds more
    # than minimum_calls of the partial outage's calls (about 8 a second).
    del scale  # the same window at every scale
    return {"failure_rate": PARTIAL_RATE, "window": 4.0, "minimum_calls": 10}


PARTIAL = Scenario(
    "partial",
    "a partial outage, counted two ways",
    (
        f"{len(FAILING_KEYS)} keys in {len(KEYS)} answer 503 SlowDown for a while: 30% of calls "
        "fail, never five in a row.",
        "Run 1 counts consecutive failures only; run 2 adds "
        f"failure_rate={PARTIAL_RATE:g} (percent over a window).",
    ),
    (
        Run(
            "run 1: consecutive failures only",
            functools.partial(_partial_phases, until_open=False),
            expect_open=False,
            ok="as expected: consecutive counting never opened the circuit; every failed call "
            "paid its full retries",
        ),
        Run(
            f"run 2: with failure_rate={PARTIAL_RATE:g}",
            functools.partial(_partial_phases, until_open=True),
            expect_open=True,
            ok="as expected: the failure rate opened the circuit, which failed fast, probed, "
            "and closed once S3 was whole again",
            settings=_rate_settings,
        ),
    ),
    ok="OK: the same partial outage never opened a circuit that counts consecutive failures; "
    "with failure_rate it opened, failed fast, probed, and closed again.",
    workers_below_threshold=True,
    needs=("failure_rate",),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (OUTAGE, PARTIAL)}
"""Every scenario by the name ``--scenario`` takes."""


# -- fleet: N processes, on their own and sharing one store ----------------------------------

_FLEET_CAP = 60.0
"""The longest a fleet phase waits for every process (each pays its own retries alone)."""


def _fleet_phases(stage: Stage) -> list[Phase]:
    from ..testing import SLOW_DOWN

    s3 = stage.s3
    return [
        _healthy(stage, 2.0),
        Phase(
            "outage: 503 SlowDown",
            "outage: S3 answers every request with 503 SlowDown",
            enter=lambda: s3.inject(SLOW_DOWN, times=None),
            minimum=2.0 * stage.scale,
            done=stage.has_opened,
            cap=_FLEET_CAP,
        ),
        Phase(
            "recovery",
            "recovery: faults cleared",
            enter=s3.clear_faults,
            minimum=1.0 * stage.scale,
            done=lambda: stage.closed_for(0.0),
            cap=_FLEET_CAP,
        ),
    ]


FLEET = Scenario(
    "fleet",
    "a fleet of processes, on their own and sharing one store",
    ("run 1: each process keeps its circuit to itself; run 2: they share it (state_url)",),
    (
        Run(
            "processes on their own",
            _fleet_phases,
            expect_open=True,
            ok="as expected: every process saw its own circuit open, and close again",
        ),
        Run(
            "processes sharing redis-server",
            _fleet_phases,
            expect_open=True,
            ok="as expected: every process saw the fleet's circuit open, and close again",
            shared_store=True,
        ),
    ),
    ok="OK: on their own, every process opened its circuit after its own failed calls and "
    "probed alone; sharing the store, the fleet opened once, probed one call at a time, and "
    "closed together.",
)
"""What ``--fleet N`` plays (in :mod:`.fleet`: has_opened and closed_for ask every process)."""
