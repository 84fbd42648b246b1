"""What happened in a demo run, as plain data: calls by phase and result, their wall times,
the circuit's transitions and the final metrics. The report reads nothing else."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from ..observers import RESULTS

__all__ = [
    "RESULTS",
    "FleetRecord",
    "MetricsSnapshot",
    "PhaseRecord",
    "RunRecord",
    "Tally",
    "TransitionSeen",
]


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


@dataclass(frozen=True)
class TransitionSeen:
    """One state change of a circuit, in the words the timeline shows."""

    circuit: str
    from_state: str
    """``CLOSED``, ``OPEN`` or ``HALF_OPEN``."""
    to_state: str
    detail: str
    """Why: ``after 5 consecutive failed calls (last: 503 SlowDown)``, ``2 successful probes``."""
    seq: int = 0
    """The transition's ``seq``: with a state store, every process sees the fleet's
    transitions under the same ``seq``."""


@dataclass(frozen=True)
class MetricsSnapshot:
    """The figures of the final metrics that the report shows, read from the registry."""

    namespace: str
    by_result: dict[str, float]
    """``N_operations_total`` summed by ``result``."""
    by_attempt: dict[str, int]
    """``N_retry_attempts_total`` summed by ``attempt``."""
    circuit_samples: list[str]
    """``N_circuit_breaker_state`` and ``..._transitions_total`` samples, as exposition lines."""


@dataclass
class RunRecord:
    """One run of a scenario, once it has ended."""

    title: str
    phases: list[PhaseRecord]
    durations: dict[str, list[float]]
    """Wall times of the calls, by result."""
    attempts: int
    """Attempts per call of the run's client (botocore's ``total_max_attempts``)."""
    failure_threshold: int
    transitions: list[TransitionSeen] = field(default_factory=list)
    final_states: dict[str, str] = field(default_factory=dict)
    """``{circuit: state}`` at the end (``closed``, ``open``, ``half_open``)."""
    metrics: Optional[MetricsSnapshot] = None

    @property
    def opened(self) -> int:
        """How many times a circuit opened (from closed or half-open)."""
        return sum(1 for t in self.transitions if t.to_state == "OPEN")

    @property
    def closed_at_end(self) -> bool:
        return bool(self.final_states) and all(s == "closed" for s in self.final_states.values())


@dataclass
class FleetRecord:
    """One run of ``demo --fleet N``, once it has ended: the phases' calls summed over
    the processes, and every transition each process reported."""

    title: str
    shared: bool
    """Whether the processes shared their circuits through a store."""
    processes: int
    phases: list[PhaseRecord]
    probes: dict[str, int]
    """Probes sent by all processes together, by phase name."""
    transitions: list[tuple[int, TransitionSeen]]
    """``(process index, transition)``, in the order they were reported."""
    final_states: dict[int, str]
    """The state of each process's circuit at the end (``closed``...)."""

    @property
    def openings(self) -> int:
        """Distinct openings of a closed circuit: with a store every process reports the
        fleet's under one ``seq``, so each counts once; without, each process's own."""
        opened = {
            (None if self.shared else index, seen.seq)
            for index, seen in self.transitions
            if seen.from_state == "CLOSED" and seen.to_state == "OPEN"
        }
        return len(opened)

    @property
    def processes_opened(self) -> int:
        return len({index for index, seen in self.transitions if seen.to_state == "OPEN"})

    @property
    def processes_closed(self) -> int:
        return sum(1 for state in self.final_states.values() if state == "closed")


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
