"""One worker process of ``demo --fleet N``.

Run as ``python -m botocore_resilience.demo.fleet_worker JSON``, it installs the
plugin (with the settings in ``JSON``, ``state_url`` among them when the fleet shares a
store), drives the demo's :class:`~.workload.Workload` with one thread
against the parent's local S3, and speaks JSON lines: events on stdout, commands on
stdin. Commands: ``hold`` (no new call starts, those in flight end; answers ``held``),
``begin NAME`` (calls start again and count for phase NAME), ``stop`` (answers
``summary``). Events: ``ready``, ``transition`` (from ``record.transition``), ``probe``
(a call sent as a half-open probe), ``held``, ``summary`` (calls by result, retries and
probes per phase), ``log`` (a WARNING of the plugin's).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from prometheus_client import CollectorRegistry

from ..handlers import CALL_KEY
from ..install import install
from .events import LogWatcher, watching
from .runner import IGNORED
from .tally import PhaseRecord, Tally, TransitionSeen
from .workload import Workload

__all__ = ["main"]

_print_lock = threading.Lock()


def emit(**event: Any) -> None:
    with _print_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    from botocore.config import Config

    from ..testing._clients import make_client, make_session

    options = json.loads(argv[1])
    tally = Tally()
    registry = CollectorRegistry()
    probes: dict[str, int] = {}
    sent_probes: set[tuple[int, int]] = set()  # a probe's retries are the same probe

    def on_transition(seen: TransitionSeen) -> None:
        emit(
            ev="transition", frm=seen.from_state, to=seen.to_state, detail=seen.detail, seq=seen.seq
        )

    watcher = LogWatcher(
        int(options["install"].get("failure_threshold", 5)),
        on_transition,
        lambda reason: None,
        lambda message: emit(ev="log", msg=message),
    )
    environ = {k: v for k, v in os.environ.items() if k not in IGNORED}
    with watching(watcher):
        session = make_session()
        installation = install(session, registry=registry, environ=environ, **options["install"])
        client = make_client(
            options["endpoint"],
            session=session,
            config=Config(connect_timeout=2, read_timeout=5, max_pool_connections=4),
        )

        def on_request(request: Any, **_: Any) -> None:
            call = getattr(request, "context", {}).get(CALL_KEY)
            permit = getattr(call, "permit", None)
            if permit is not None and permit.probe_id:
                probe = (permit.generation, permit.probe_id)
                if probe in sent_probes:
                    return
                sent_probes.add(probe)
                phase = tally.phases[-1].name if tally.phases else ""
                probes[phase] = probes.get(phase, 0) + 1
                emit(ev="probe")

        # request-created: its request has the call's context on every botocore version
        # (before-send's prepared request has none before 1.3x).
        client.meta.events.register("request-created.s3", on_request)
        workload = Workload(
            client,
            options["bucket"],
            tally,
            workers=1,
            rate=float(options["rate"]),
            on_rejected=lambda operation, rejection, seconds: None,
            on_unexpected=lambda error: emit(ev="log", msg=f"{type(error).__name__}: {error}"),
        )
        workload.start()
        emit(ev="ready", pid=os.getpid())
        retries_before = 0.0
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "hold":
                tally.hold()
                if tally.phases:
                    tally.phases[-1].retries = _retries(registry) - retries_before
                emit(ev="held")
            elif command == "begin":
                retries_before = _retries(registry)
                tally.begin(PhaseRecord(argument))
            elif command == "stop":
                break
        workload.stop()  # the last phase's calls in flight end and count for it
        if tally.phases:
            tally.phases[-1].retries = _retries(registry) - retries_before
        emit(
            ev="summary",
            phases=[
                {
                    "name": p.name,
                    "calls": dict(p.calls),
                    "retries": p.retries,
                    "probes": probes.get(p.name, 0),
                }
                for p in tally.phases
            ],
            states={n: b.state.value for n, b in installation.breakers().items()},
        )
        installation.uninstall()
    return 0


def _retries(registry: CollectorRegistry) -> float:
    return sum(
        sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.endswith("_retry_attempts_total")
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
