"""The demo's closing report, made from plain data (:mod:`.tally`) into ``(text, style)`` lines.

Nothing here reads a registry, a breaker or the clock: the report of a run is a function
of its :class:`~.tally.RunRecord`, which is what the unit tests give it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .console import format_duration
from .tally import RESULTS, FleetRecord, MetricsSnapshot, PhaseRecord, RunRecord

__all__ = [
    "Lines",
    "comparison",
    "final_metrics",
    "fleet_comparison",
    "fleet_verdict",
    "phase_table",
    "verdict",
    "wall_times",
]

Lines = list[tuple[str, str]]
"""``(text, style)`` pairs; the style is the console's (``"bold red"``) or empty."""


def phase_table(phases: Sequence[PhaseRecord]) -> Lines:
    """Calls by result per phase, retries, requests sent and seconds, with a total row."""
    header = ("phase", *RESULTS, "retries", "sent", "seconds")
    rows: list[tuple[str, ...]] = [header]
    total = PhaseRecord("total")
    for number, phase in enumerate(phases, 1):
        total.calls.update(phase.calls)
        total.retries += phase.retries
        total.sent += phase.sent
        total.seconds += phase.seconds
        rows.append(_row(f"{number} {phase.name}", phase))
    rows.append(_row("total", total))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines: Lines = [("", ""), ("Calls by result, per phase", "bold")]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append(("  " + "  ".join(cells), ""))
    lines.append(("  (sent: HTTP requests that reached S3, retries included)", ""))
    return lines


def _row(name: str, phase: PhaseRecord) -> tuple[str, ...]:
    counts = (str(phase.calls[result]) for result in RESULTS)
    return (name, *counts, f"{phase.retries:.0f}", str(phase.sent), f"{phase.seconds:.1f}")


def wall_times(durations: dict[str, list[float]], attempts: int) -> Lines:
    """Median and longest wall time per result, and how much sooner a rejection came back."""
    lines: Lines = [("", ""), (f"{'Wall time of one call':<32}{'median':>10}{'max':>12}", "bold")]
    labels = {
        "success": "success",
        "error": f"error (after {attempts} attempts)",
        "circuit_open": "circuit_open (rejected)",
    }
    for result, label in labels.items():
        times = durations.get(result, [])
        if times:
            median = format_duration(statistics.median(times))
            longest = format_duration(max(times))
        else:
            median = longest = "-"
        lines.append((f"  {label:<30}{median:>10}{longest:>12}", ""))
    failed, rejected = durations.get("error", []), durations.get("circuit_open", [])
    if failed and rejected:
        ratio = statistics.median(failed) / max(statistics.median(rejected), 1e-9)
        lines.append(
            (
                f"  A rejected call came back ~{ratio:,.0f}x sooner than a failed one, "
                "and sent nothing.",
                "",
            )
        )
    return lines


def final_metrics(metrics: MetricsSnapshot) -> Lines:
    """The figures Prometheus would scrape, summed where the labels would only add noise."""
    namespace = metrics.namespace
    operations = f"{namespace}_operations_total"
    by_result = ", ".join(f"{r} {metrics.by_result.get(r, 0.0):.0f}" for r in RESULTS)
    lines: Lines = [
        ("", ""),
        ("Final metrics (what Prometheus would scrape)", "bold"),
        (f"  {operations}, summed by result: {by_result}", ""),
    ]
    lines += [(f"  {sample}", "") for sample in metrics.circuit_samples]
    by_attempt = ", ".join(f'attempt="{a}" {n}' for a, n in sorted(metrics.by_attempt.items()))
    lines.append(
        (f"  {namespace}_retry_attempts_total, summed by attempt: {by_attempt or 'none'}", "")
    )
    return lines


def verdict(run: RunRecord, *, expect_open: bool, ok: str, opens_when: str) -> tuple[Lines, bool]:
    """Whether ``run`` went as expected, in words: ``(lines, passed)``.

    ``opens_when`` completes "it opens ..." (``after 5 consecutive failed calls``).
    """
    opened, closed = run.opened > 0, run.closed_at_end
    if (expect_open and opened and closed) or (not expect_open and not opened):
        return [(ok, "bold green")], True
    lines: Lines = []
    if expect_open and not opened:
        lines.append((f"FAILED: the circuit never opened (it opens {opens_when}).", "bold red"))
    if not expect_open and opened:
        lines.append((f"FAILED: the circuit opened {run.opened} time(s).", "bold red"))
    if expect_open and not closed:
        states = ", ".join(f"{n} {s}" for n, s in run.final_states.items()) or "none"
        lines.append((f"FAILED: the circuit did not close again (circuits: {states}).", "bold red"))
    return lines, False


def comparison(runs: Sequence[RunRecord]) -> Lines:
    """Runs side by side: calls by result over the whole run, failed calls' retries, openings."""
    header = ("run", *RESULTS, "retries", "sent", "opened")
    rows: list[tuple[str, ...]] = [header]
    for run in runs:
        calls = sum((p.calls for p in run.phases), PhaseRecord("").calls)
        rows.append(
            (
                run.title,
                *(str(calls[result]) for result in RESULTS),
                f"{sum(p.retries for p in run.phases):.0f}",
                str(sum(p.sent for p in run.phases)),
                str(run.opened),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines: Lines = [("", ""), ("The runs side by side", "bold")]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append(("  " + "  ".join(cells), ""))
    lines.append(("  (opened: times a circuit opened; sent: requests that reached S3)", ""))
    return lines


def fleet_verdict(run: FleetRecord, *, ok: str) -> tuple[Lines, bool]:
    """Whether every process's circuit opened in the outage and was closed at the end."""
    opened, closed, size = run.processes_opened, run.processes_closed, run.processes
    if opened == size and closed == size:
        return [(ok, "green")], True
    lines: Lines = []
    if opened < size:
        lines.append(
            (f"FAILED: {size - opened} of {size} processes never saw it open.", "bold red")
        )
    if closed < size:
        lines.append((f"FAILED: {size - closed} of {size} processes did not close.", "bold red"))
    return lines, False


def fleet_comparison(runs: Sequence[FleetRecord], failure_threshold: int) -> Lines:
    """The fleet's runs side by side: failed calls in the outage, openings, recovery probes."""
    header = ("run", "failed calls", "openings", "probes", "closed")
    rows: list[tuple[str, ...]] = [header]
    for run in runs:
        outage = next((p for p in run.phases if p.name.startswith("outage")), None)
        failed = outage.calls["error"] if outage is not None else 0
        rows.append(
            (
                run.title,
                str(failed),
                str(run.openings),
                str(run.probes.get("recovery", 0)),
                f"{run.processes_closed}/{run.processes}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines: Lines = [("", ""), ("The fleet on its own and sharing one store", "bold")]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append(("  " + "  ".join(cells), ""))
    lines += [
        (
            f"  (failed calls: calls that failed in the outage, retries and all; a circuit "
            f"opens after {failure_threshold},",
            "",
        ),
        ("  plus the calls already in flight; probes: sent in the recovery, all processes)", ""),
    ]
    return lines
