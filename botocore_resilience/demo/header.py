"""The lines a demo run prints before its timeline: what runs, against what, with which
settings. Plain values in, ``(text, style)`` lines out (as :mod:`.report`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import __version__
from ..config import ENV_PREFIX, Settings
from .options import DemoOptions
from .report import Lines
from .scenario import Scenario
from .workload import OPERATIONS

__all__ = ["metrics_url", "run_header", "scenario_header", "timeline_header"]

_INDENT = " " * 12
_SCOPE = {"service": "service and region", "operation": "operation", "bucket": "bucket"}


def scenario_header(
    scenario: Scenario, options: DemoOptions, endpoint_url: str, bucket: str, workers: int
) -> Lines:
    """The title, the local S3, the workload and the scenario's story."""
    lines: Lines = [
        (f"botocore-resilience {__version__} demo: {scenario.title}", "bold"),
        ("", ""),
        (f"  S3        moto in this process, {endpoint_url}, bucket {bucket}", ""),
        (
            f"  workload  {workers} threads calling {', '.join(OPERATIONS)} in turn, "
            f"{options.rate:g} calls/s each",
            "",
        ),
    ]
    if workers < options.workers:
        text = (
            f"(not {options.workers}: fewer threads than failure_threshold, so no run of "
            "failures across threads reaches it by chance)"
        )
        lines.append((_INDENT + text, ""))
    lines += [(f"  story     {line}", "") for line in scenario.story]
    return lines


def run_header(
    *,
    title: str,
    settings: Settings,
    options: DemoOptions,
    overrides: Mapping[str, Any],
    environ: Mapping[str, str],
    ignored: Mapping[str, str],
    mode: str,
    attempts: int,
    serving: bool,
    first: bool,
) -> Lines:
    """How the run installs the plugin and what that means; for the first run of a
    scenario also the client's retries and where the metrics are."""
    lines: Lines = []
    out = lines.append
    if title:
        out(("", ""))
        out((f"==== {title} ====", "bold cyan"))
    extra = "".join(f", {k}={v:g}" for k, v in overrides.items())
    out(
        (
            "  plugin    botocore_resilience.install(session, registry=registry, "
            f"recovery_timeout={settings.recovery_timeout:g},",
            "",
        )
    )
    out(
        (
            f'{_INDENT}    retry_mode="{options.retry_mode}", '
            f"max_attempts={options.max_attempts}{extra})",
            "",
        )
    )
    out(
        (
            f"{_INDENT}one circuit per {_SCOPE[settings.scope]}: {settings.failure_threshold} "
            "consecutive failed calls open it;",
            "",
        )
    )
    if settings.failure_rate is not None:
        out(
            (
                f"{_INDENT}so do {settings.failure_rate:g}% failed calls over "
                f"{settings.window:g} s, once at least {settings.minimum_calls} calls were "
                "judged;",
                "",
            )
        )
    out(
        (
            f"{_INDENT}it rejects calls for {settings.recovery_timeout:g} s, then lets "
            f"{settings.half_open_max_calls} probe at a time through; "
            f"{settings.success_threshold} good probes close it",
            "",
        )
    )
    for option, source in settings.sources.items():
        env = ENV_PREFIX + option.upper()
        if source == "environment":
            out((f"{_INDENT}from the environment: {env}={environ.get(env)}", ""))
    for env, why in ignored.items():
        if environ.get(env, "").strip():
            out((f"{_INDENT}ignored: {env}={environ[env]} ({why})", ""))
    if first:  # later runs have the same client, retries and metrics
        lines += _retries(mode, attempts) + _metrics(options, serving)
    return lines + timeline_header()


def _retries(mode: str, attempts: int) -> Lines:
    lines: Lines = [
        (
            f"  retries   botocore {mode} mode, {attempts} attempts per call, with real "
            "jittered backoff (random,",
            "",
        ),
        (f"{_INDENT}up to 1 s before the first retry, up to 2 s before the second)", ""),
    ]
    if mode == "adaptive":
        lines.append(
            (f"{_INDENT}after SlowDown, adaptive mode also slows the client down (to 0.5", "")
        )
        lines.append(
            (
                f"{_INDENT}requests/s at worst): failed calls take longer, the circuit opens later",
                "",
            )
        )
    elif mode == "standard":
        lines.append(
            (f"{_INDENT}(the plugin's default; adaptive mode would also slow the client down", "")
        )
        lines.append(
            (f"{_INDENT}after SlowDown and the circuit open later: try --retry-mode adaptive)", "")
        )
    return lines


def _metrics(options: DemoOptions, serving: bool) -> Lines:
    if serving:
        text = f"  metrics   serving {metrics_url(options)} while the demo runs"
    elif options.metrics_port is not None:
        text = f"  metrics   could not serve /metrics on port {options.metrics_port} (see above)"
    else:
        text = "  metrics   a private registry, shown at the end (--metrics-port PORT serves it)"
    return [(text, "")]


def timeline_header() -> Lines:
    return [
        ("", ""),
        ("  Every second: calls finished by result, retries made, requests that reached S3.", ""),
        ("", ""),
        (
            f"{'time':>7}  {'success':>7} {'error':>5} {'circuit_open':>12} {'retries':>7} "
            f"{'sent':>5}  circuit",
            "bold",
        ),
    ]


def metrics_url(options: DemoOptions) -> str:
    """Where ``--metrics-port`` serves, as a browser or curl would reach it."""
    addr = options.metrics_addr
    host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(addr, addr)
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{options.metrics_port}/metrics"
