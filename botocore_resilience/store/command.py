"""``python -m botocore_resilience circuits``: the fleet's circuits, for operators.

::

    python -m botocore_resilience circuits [--json]       # list them
    python -m botocore_resilience circuits open NAME      # force one open for the fleet
    python -m botocore_resilience circuits close NAME     # close it (and forget its failures)

The store is the one ``BOTOCORE_RESILIENCE_STATE_URL`` names, read exactly as
``install()`` reads it. Exit status: 0 done, 1 the store did not answer, 2 no store is
configured (or a setting is invalid, or redis-py is missing).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any, TextIO

from ..config import Settings
from ..errors import ConfigurationError
from .base import FleetState, StoreUnavailable

__all__ = ["add_circuits_command"]

PROG = "python -m botocore_resilience circuits"

# An operator's command may wait longer for the store than a call ever does.
_MIN_TIMEOUT = 2.0


def add_circuits_command(commands: Any) -> None:
    """Add the ``circuits`` subcommand to the CLI's subparsers."""
    circuits = commands.add_parser(
        "circuits",
        help="list the fleet's circuits in the state store, or force one open or closed",
        description="List the circuits in the state store (BOTOCORE_RESILIENCE_STATE_URL): "
        "name, state, consecutive failures, seconds until the next probe. 'open NAME' forces "
        "a circuit open for the whole fleet (no probe goes until it is closed); 'close NAME' "
        "closes it and forgets its failures.",
    )
    circuits.add_argument("action", nargs="?", choices=("list", "open", "close"), default="list")
    circuits.add_argument("name", nargs="?", help="the circuit, e.g. s3/us-east-1")
    circuits.add_argument("--json", action="store_true", help="print JSON instead of a table")
    circuits.set_defaults(run=run)


def run(
    args: argparse.Namespace, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO
) -> int:
    if args.action != "list" and not args.name:
        print(f"{PROG}: error: '{args.action}' needs the circuit's NAME", file=stderr)
        return 2
    try:
        settings = Settings.from_env(environ)
    except ConfigurationError as error:
        print(f"{PROG}: error: {error}", file=stderr)
        return 2
    if settings.state_url is None:
        print(
            f"{PROG}: error: no state store: set BOTOCORE_RESILIENCE_STATE_URL "
            "(circuits without one live in each process)",
            file=stderr,
        )
        return 2
    try:
        from . import open_store

        store = open_store(settings.state_url, max(settings.state_timeout, _MIN_TIMEOUT))
    except ImportError as error:
        print(f"{PROG}: error: {error}", file=stderr)
        return 2
    try:
        if args.action == "list":
            states = store.circuits()
        else:
            target = "open" if args.action == "open" else "closed"
            cause = "forced" if target == "open" else "reset"
            states = [store.force(args.name, target, cause)]
    except StoreUnavailable as error:
        print(f"{PROG}: error: state store {settings.state_url} unavailable ({error})", file=stderr)
        return 1
    finally:
        store.close()
    if args.json:
        json.dump([_as_dict(state) for state in states], stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(format_circuits(states))
    return 0


def _state_of(state: FleetState) -> str:
    return "open (forced)" if state.state == "forced_open" else state.state


def _next_probe(state: FleetState) -> str:
    if state.state == "open":
        return f"{state.remaining:.1f}"
    if state.state == "forced_open":
        return "never"
    return "-"


def _as_dict(state: FleetState) -> dict[str, Any]:
    return {
        "name": state.circuit,
        "state": _state_of(state),
        "failures": state.failures,
        "next_probe_in": state.remaining if state.state == "open" else None,
        "probes_in_flight": state.probes,
    }


def format_circuits(states: list[FleetState]) -> str:
    """The circuits as an aligned table: name, state, failures, seconds to the next probe.

    >>> print(format_circuits([FleetState("s3/us-east-1", "open", 3, 1, 5, remaining=42.0)]),
    ...       end="")
    name          state  failures  next probe (s)
    s3/us-east-1  open   5         42.0
    """
    rows = [("name", "state", "failures", "next probe (s)")]
    rows += [(s.circuit, _state_of(s), str(s.failures), _next_probe(s)) for s in states]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] + "\n"
        for row in rows
    )
