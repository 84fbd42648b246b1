"""``python -m botocore_resilience``: ``config`` (the effective settings) and ``demo``.

::

    python -m botocore_resilience config [--json] [--set OPTION=VALUE ...]
    python -m botocore_resilience demo [--fast] [--metrics-port PORT] ...
    python -m botocore_resilience circuits [open|close NAME]

``config`` reads the environment exactly as ``install()`` does and prints every
setting with its value and where the value came from; a bad value is reported on
stderr with exit status 2, the status ``install()`` callers would see as a
``ConfigurationError``, and a ``BOTOCORE_RESILIENCE_*`` variable that is no setting
(a typo) is warned about on stderr, as ``install()`` logs it. ``demo`` runs
:mod:`botocore_resilience.demo`. ``circuits`` lists or forces the fleet's circuits in
the state store (:mod:`botocore_resilience.store.command`).

Each command is one ``_add_*`` function that adds its subparser and sets ``run`` to
the function that carries it out; flags take their values through the settings'
own parsers (:mod:`botocore_resilience.config`), so ``--metrics-port`` accepts
exactly what ``BOTOCORE_RESILIENCE_METRICS_PORT`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, TextIO, TypeVar

from . import __version__
from .config import (
    SETTINGS,
    InvalidValue,
    Settings,
    parse_address,
    parse_count,
    parse_port,
    parse_positive,
    unknown_variable_warnings,
)
from .errors import ConfigurationError
from .store.command import add_circuits_command

__all__ = ["main"]

PROG = "python -m botocore_resilience"

_T = TypeVar("_T")


def main(
    argv: Optional[Sequence[str]] = None,
    *,
    environ: Optional[Mapping[str, str]] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """Run a command; return the process exit status.

    ``environ`` (default ``os.environ``) is where the settings are read from;
    ``stdout``/``stderr`` default to the process's.

    >>> import io
    >>> out = io.StringIO()
    >>> main(["config"], environ={"BOTOCORE_RESILIENCE_SCOPE": "bucket"}, stdout=out)
    0
    >>> [line.split()[-1] for line in out.getvalue().splitlines() if line.startswith("scope")]
    ['environment']
    """
    environ = os.environ if environ is None else environ
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    args = _parser().parse_args(argv)
    status: int = args.run(args, environ, stdout, stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="botocore-resilience: retries, circuit breakers and metrics for boto3.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_config(commands)
    _add_demo(commands)
    add_circuits_command(commands)
    return parser


# -- config ---------------------------------------------------------------------------------


def _add_config(commands: Any) -> None:
    config = commands.add_parser(
        "config",
        help="print the effective settings and where each came from",
        description="Print every setting as install() would read it now: option, environment "
        "variable, value, and source (default, environment or keyword). Exit status 2 if a "
        "value is invalid; a warning on stderr for a BOTOCORE_RESILIENCE_* variable that is "
        "no setting.",
    )
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")
    config.add_argument(
        "--set",
        dest="overrides",
        metavar="OPTION=VALUE",
        action="append",
        type=_override,
        default=[],
        help="a keyword override, as install(OPTION=VALUE) would get it (repeatable)",
    )
    config.set_defaults(run=_config)


def _config(
    args: argparse.Namespace, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO
) -> int:
    try:
        settings = Settings.from_env(environ, **dict(args.overrides))
    except ConfigurationError as error:
        print(f"{PROG} config: error: {error}", file=stderr)
        return 2
    for warning in unknown_variable_warnings(environ):
        print(f"{PROG} config: warning: {warning}", file=stderr)
    if args.json:
        json.dump(_as_json(settings), stdout, indent=2)
        stdout.write("\n")
    else:
        stdout.write(format_settings(settings))
    return 0


# -- demo -----------------------------------------------------------------------------------


def _add_demo(commands: Any) -> None:
    from .demo.scenario import SCENARIOS

    demo = commands.add_parser(
        "demo",
        help="watch a local S3 go down and come back, with the circuit opening and closing",
        description="Start a local S3 (moto), install the plugin, drive a steady workload "
        "through healthy -> 503 SlowDown storm -> connection refused -> recovery, and print "
        "what happened. Needs the demo extra: pip install 'botocore-resilience[demo]'.",
    )
    demo.add_argument(
        "--scenario",
        choices=sorted(SCENARIOS),
        default="outage",
        help="outage (default): S3 goes down and comes back; partial: 30%% of calls fail, "
        "counted without and with failure_rate",
    )
    demo.add_argument(
        "--fleet",
        type=_argument(parse_count),
        metavar="N",
        help="N worker processes against the same S3, each on its own and then sharing "
        "circuits through a local redis-server (needs redis-server and redis-py)",
    )
    demo.add_argument(
        "--fast", action="store_true", help="half the phase lengths (same as --duration-scale 0.5)"
    )
    demo.add_argument(
        "--duration-scale",
        type=_argument(parse_positive),
        metavar="X",
        help="multiply phase lengths and the recovery timeout by X (default 1)",
    )
    demo.add_argument(
        "--workers", type=_argument(parse_count), default=4, metavar="N", help="threads (default 4)"
    )
    demo.add_argument(
        "--rate",
        type=_argument(parse_positive),
        default=5.0,
        metavar="R",
        help="calls per second per thread (default 5)",
    )
    demo.add_argument(
        "--retry-mode",
        choices=("standard", "adaptive"),
        default="standard",
        help="botocore retry mode of the demo's client (default standard; adaptive rate-limits "
        "the client after SlowDown, which makes the outage much longer to watch)",
    )
    demo.add_argument(
        "--metrics-port",
        type=_argument(parse_port),
        metavar="PORT",
        help="serve /metrics on this port while the demo runs",
    )
    demo.add_argument(
        "--metrics-addr",
        type=_argument(parse_address),
        default="127.0.0.1",
        metavar="ADDR",
        help="address for --metrics-port (default 127.0.0.1)",
    )
    demo.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colours: auto (on a terminal, unless NO_COLOR is set), always or never",
    )
    demo.set_defaults(run=_demo)


def _demo(
    args: argparse.Namespace, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO
) -> int:
    from .demo import DemoOptions, run  # imports boto3; moto only when the demo starts

    options = DemoOptions(
        duration_scale=args.duration_scale or (0.5 if args.fast else 1.0),
        workers=args.workers,
        rate=args.rate,
        retry_mode=args.retry_mode,
        metrics_port=args.metrics_port,
        metrics_addr=args.metrics_addr,
        color=None if args.color == "auto" else args.color == "always",
        scenario=args.scenario,
        fleet=args.fleet,
    )
    return run(options, stdout=stdout, stderr=stderr, environ=environ)


# -- output ---------------------------------------------------------------------------------


def format_settings(settings: Settings) -> str:
    """The settings as an aligned table: option, environment variable, value, source."""
    rows = [("option", "environment variable", "value", "source")]
    rows += [
        (s.option, s.env, format_value(getattr(settings, s.option)), settings.source_of(s.option))
        for s in SETTINGS
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    table = "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3] + "\n"
        for row in rows
    )
    return table + "\n" + _RETRY_NOTE


# What the two retry settings do is easy to misread from their names alone.
_RETRY_NOTE = """\
retry_mode and max_attempts fill in only what a client's user set nowhere (a client or
session Config, AWS_RETRY_MODE / AWS_MAX_ATTEMPTS, the profile). Where they fill in,
max_attempts is one number for every service, legacy mode included: it replaces botocore's
per-service defaults (DynamoDB: 4 attempts on botocore 1.44, 10 in legacy mode).
See docs/explanation/adaptive-mode.md.
"""


def format_value(value: Any) -> str:
    """A setting's value as an operator would type it in the environment."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "(unset)"
    if value == "":
        return '""'
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _as_json(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        s.option: {
            "env": s.env,
            "value": getattr(settings, s.option),
            "default": s.default,
            "source": settings.source_of(s.option),
            "help": s.help,
        }
        for s in SETTINGS
    }


# -- argument types -------------------------------------------------------------------------


def _argument(parse: Callable[[object], _T]) -> Callable[[str], _T]:
    """An argparse ``type=`` from a setting's parser: the same values, the same words."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except InvalidValue as invalid:
            raise argparse.ArgumentTypeError(f"expected {invalid.accepted}, got {text!r}") from None

    convert.__name__ = parse.__name__  # argparse names the type in some messages
    return convert


def _override(text: str) -> tuple[str, str]:
    option, equals, value = text.partition("=")
    if not equals or not option.strip():
        raise argparse.ArgumentTypeError(f"expected OPTION=VALUE, got {text!r}")
    return option.strip(), value
