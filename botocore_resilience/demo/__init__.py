"""``python -m botocore_resilience demo``: watch a local S3 go down and come back.

A local S3 (moto over real HTTP on 127.0.0.1) serves a bucket, and a few threads call
``PutObject``/``GetObject``/``HeadObject`` on it at a steady rate through a session with
the plugin installed, while S3 goes through the phases of a scenario
(:mod:`~botocore_resilience.demo.scenario`). The default, ``outage``::

    healthy -> outage 1: 503 SlowDown to every request -> outage 2: connection refused
    (server stopped) -> recovery (restarted on the same port, faults cleared)

``--scenario partial`` fails 30 % of calls, once with consecutive counting only and once
with ``failure_rate``; ``--fleet N`` runs N worker processes against the same S3, on their
own and then sharing circuits through a local ``redis-server``
(:mod:`~botocore_resilience.demo.fleet`).

The timeline shows phase banners, a line per second (calls by result, retries, requests
that reached S3, circuit state), every circuit state change and the first fast-fail
rejection after each opening; then a table per phase, the wall time of a rejected call
against a failed one, and the final metrics.

Nothing is faked: retries are botocore's, with its real jittered backoff, and the breaker
is the plugin's, with a short ``recovery_timeout`` so the outage fits in seconds. State
changes come from the structured ``transition`` attribute of the plugin's log records
(logger ``botocore_resilience``), counts from its Prometheus metrics. Exit status 0, or
1 if a circuit did not do what the scenario expects (open and close again, or never open).

The package, one role per module: :mod:`.options` (the flags), :mod:`.scenario` (what S3
goes through), :mod:`.workload` (the calling threads), :mod:`.tally` (what happened, as
plain data), :mod:`.events` (log records to events), :mod:`.console` (the screen),
:mod:`.runner` (one process playing a scenario), :mod:`.fleet` and :mod:`.fleet_worker`
(many processes), :mod:`.report` (plain data to the closing report).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Optional, TextIO

from ..errors import ConfigurationError
from .console import Console, isatty
from .options import DemoOptions
from .scenario import SCENARIOS

__all__ = ["SCENARIOS", "DemoOptions", "run"]


def run(
    options: Optional[DemoOptions] = None,
    *,
    stdout: TextIO,
    stderr: Optional[TextIO] = None,
    environ: Optional[Mapping[str, str]] = None,
) -> int:
    """Run the demo, printing to ``stdout`` (errors to ``stderr``); return the exit status:
    0, 1 if a circuit did not do what the scenario expects, 2 if the demo could not start."""
    options = DemoOptions() if options is None else options
    environ = os.environ if environ is None else environ
    stderr = sys.stderr if stderr is None else stderr
    live = isatty(stdout) and environ.get("TERM") != "dumb"
    color = live and not environ.get("NO_COLOR") if options.color is None else options.color
    console = Console(stdout, color=color, live=live)
    try:
        from ..testing import LocalS3

        s3 = LocalS3().start()
    except ImportError as error:
        print(f"The demo needs moto's server ({error}).", file=stderr)
        print("Install it with: python3 -m pip install 'botocore-resilience[demo]'", file=stderr)
        return 2
    try:
        if options.fleet is not None:
            from .fleet import play_fleet

            return play_fleet(options, console, s3, environ, stderr)
        from .runner import play

        return play(SCENARIOS[options.scenario], options, console, s3, environ)
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
