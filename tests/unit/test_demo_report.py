"""The demo's tally, events and report on plain data: no S3, no threads calling it, no clock."""

from __future__ import annotations

import threading
from collections import Counter

from botocore_resilience.breaker import CircuitState, Transition
from botocore_resilience.demo import report
from botocore_resilience.demo.events import describe
from botocore_resilience.demo.tally import (
    FleetRecord,
    MetricsSnapshot,
    PhaseRecord,
    RunRecord,
    Tally,
    TransitionSeen,
)

DEADLINE = 60.0

# -- the tally: each call counts for the phase in which it started ---------------------------


def test_a_call_counts_for_the_phase_in_which_it_started() -> None:
    tally = Tally()
    healthy, storm = PhaseRecord("healthy"), PhaseRecord("storm")
    tally.begin(healthy)
    phase = tally.start()  # started while healthy...
    assert tally.hold(timeout=0) is False  # (a call in flight: not drained)
    tally.begin(storm)
    tally.record(phase, "success", 0.01)  # ...and finished in the storm
    assert healthy.calls == {"success": 1}
    assert storm.calls == {}


def test_phases_change_only_between_calls() -> None:
    tally = Tally()
    first, second = PhaseRecord("first"), PhaseRecord("second")
    tally.begin(first)
    in_flight = tally.start()
    assert tally.hold(timeout=0) is False  # holding: waits for the call in flight
    tally.record(in_flight, "error", 0.5)
    assert tally.hold(timeout=0) is True  # drained

    # While held, a call cannot start; once the next phase begins it counts for that one.
    started: list[PhaseRecord] = []
    caller = threading.Thread(target=lambda: started.append(tally.start()))
    caller.start()
    tally.begin(second)
    caller.join(timeout=DEADLINE)
    assert started == [second]


def test_a_tick_takes_the_calls_and_retry_reasons_since_the_last_one() -> None:
    tally = Tally()
    tally.begin(PhaseRecord("only"))
    for result in ("success", "error", "error"):
        tally.record(tally.start(), result, 0.1)
    tally.retried("503 SlowDown")
    assert tally.take_tick() == (Counter(success=1, error=2), Counter({"503 SlowDown": 1}))
    assert tally.take_tick() == (Counter(), Counter())


# -- events: from the structured transition, never from the message text ---------------------


def _transition(
    from_state: CircuitState, to_state: CircuitState, failures: int, cause: str
) -> Transition:
    return Transition(
        circuit_name="s3/us-east-1",
        from_state=from_state,
        to_state=to_state,
        seq=1,
        consecutive_failures=failures,
        cause=cause,
    )


def test_an_opening_after_consecutive_failures_names_the_count_and_the_last_error() -> None:
    seen = describe(_transition(CircuitState.CLOSED, CircuitState.OPEN, 5, "503 SlowDown"), 5)
    assert seen == TransitionSeen(
        "s3/us-east-1",
        "CLOSED",
        "OPEN",
        "after 5 consecutive failed calls (last: 503 SlowDown)",
        seq=1,
    )


def test_an_opening_by_another_trigger_says_its_cause() -> None:
    cause = "40% of 20 calls failed in 60 s"
    seen = describe(_transition(CircuitState.CLOSED, CircuitState.OPEN, 1, cause), 5)
    assert seen.detail == cause


def test_probes_and_closing() -> None:
    half = describe(_transition(CircuitState.OPEN, CircuitState.HALF_OPEN, 0, ""), 5)
    failed = describe(
        _transition(CircuitState.HALF_OPEN, CircuitState.OPEN, 6, "EndpointConnectionError"), 5
    )
    closed = describe(
        _transition(CircuitState.HALF_OPEN, CircuitState.CLOSED, 0, "2 successful probes"), 5
    )
    assert half.detail == "letting a probe through"
    assert failed.detail == "a probe failed (EndpointConnectionError)"
    assert (closed.from_state, closed.to_state, closed.detail) == (
        "HALF_OPEN",
        "CLOSED",
        "2 successful probes",
    )


# -- the report ------------------------------------------------------------------------------


def _phase(name: str, sent: int, retries: float, **calls: int) -> PhaseRecord:
    return PhaseRecord(name, Counter(calls), retries=retries, sent=sent, seconds=1.0)


def _run(transitions: list[TransitionSeen], final: str = "closed") -> RunRecord:
    return RunRecord(
        title="run",
        phases=[
            _phase("healthy", 10, 0, success=10),
            _phase("outage", 15, 10, error=5, circuit_open=7),
            _phase("recovery", 4, 0, success=4, circuit_open=1),
        ],
        durations={"success": [0.01, 0.03], "error": [1.0, 2.0, 3.0], "circuit_open": [0.001]},
        attempts=3,
        failure_threshold=5,
        transitions=transitions,
        final_states={"s3/us-east-1": final},
    )


OPENED = TransitionSeen("s3/us-east-1", "CLOSED", "OPEN", "after 5 ...")
CLOSED = TransitionSeen("s3/us-east-1", "HALF_OPEN", "CLOSED", "2 successful probes")


def _texts(lines: report.Lines) -> list[str]:
    return [text for text, _ in lines]


def test_the_phase_table_has_a_row_per_phase_and_their_total() -> None:
    rows = _texts(report.phase_table(_run([]).phases))
    assert rows[1] == "Calls by result, per phase"
    assert rows[2].split() == [
        "phase", "success", "error", "circuit_open", "retries", "sent", "seconds",
    ]  # fmt: skip
    assert rows[3].split() == ["1", "healthy", "10", "0", "0", "0", "10", "1.0"]
    assert rows[4].split() == ["2", "outage", "0", "5", "7", "10", "15", "1.0"]
    assert rows[6].split() == ["total", "14", "5", "8", "10", "29", "3.0"]


def test_wall_times_compare_a_rejected_call_with_a_failed_one() -> None:
    lines = _texts(report.wall_times(_run([]).durations, attempts=3))
    assert lines[3].split() == ["error", "(after", "3", "attempts)", "2.00", "s", "3.00", "s"]
    assert lines[4].split() == ["circuit_open", "(rejected)", "1.0", "ms", "1.0", "ms"]
    assert "A rejected call came back ~2,000x sooner than a failed one" in lines[5]


def test_wall_times_without_rejections_say_so_with_dashes() -> None:
    lines = _texts(report.wall_times({"success": [0.5]}, attempts=4))
    assert lines[4].split() == ["circuit_open", "(rejected)", "-", "-"]
    assert not any("sooner" in line for line in lines)


def test_final_metrics() -> None:
    snapshot = MetricsSnapshot(
        "botocore",
        {"success": 14.0, "error": 5.0},
        {"2": 5, "1": 5},
        ['botocore_circuit_breaker_state{circuit_name="s3/us-east-1"} 0'],
    )
    lines = _texts(report.final_metrics(snapshot))
    assert lines[2] == (
        "  botocore_operations_total, summed by result: success 14, error 5, circuit_open 0"
    )
    assert lines[3] == '  botocore_circuit_breaker_state{circuit_name="s3/us-east-1"} 0'
    assert lines[4] == (
        '  botocore_retry_attempts_total, summed by attempt: attempt="1" 5, attempt="2" 5'
    )


def test_a_run_that_should_open_passes_when_it_opened_and_closed_again() -> None:
    lines, passed = report.verdict(
        _run([OPENED, CLOSED]), expect_open=True, ok="OK", opens_when="after 5"
    )
    assert (lines, passed) == ([("OK", "bold green")], True)


def test_a_run_that_never_opened_or_never_closed_fails_and_says_why() -> None:
    lines, passed = report.verdict(
        _run([], final="closed"), expect_open=True, ok="OK", opens_when="after 5 calls"
    )
    assert not passed
    assert _texts(lines) == ["FAILED: the circuit never opened (it opens after 5 calls)."]
    lines, passed = report.verdict(
        _run([OPENED], final="open"), expect_open=True, ok="OK", opens_when="after 5 calls"
    )
    assert not passed
    assert _texts(lines) == [
        "FAILED: the circuit did not close again (circuits: s3/us-east-1 open)."
    ]


def test_a_run_that_should_never_open_fails_if_it_opened() -> None:
    lines, passed = report.verdict(_run([]), expect_open=False, ok="fine", opens_when="")
    assert (lines, passed) == ([("fine", "bold green")], True)
    lines, passed = report.verdict(
        _run([OPENED, CLOSED]), expect_open=False, ok="fine", opens_when=""
    )
    assert not passed
    assert _texts(lines) == ["FAILED: the circuit opened 1 time(s)."]


def test_the_comparison_puts_runs_side_by_side() -> None:
    consecutive, rate = _run([]), _run([OPENED, CLOSED, OPENED, CLOSED])
    consecutive.title, rate.title = "consecutive only", "with failure_rate=20"
    rows = _texts(report.comparison([consecutive, rate]))
    assert rows[2].split() == [
        "run",
        "success",
        "error",
        "circuit_open",
        "retries",
        "sent",
        "opened",
    ]
    assert rows[3].split() == ["consecutive", "only", "14", "5", "8", "10", "29", "0"]
    assert rows[4].split() == ["with", "failure_rate=20", "14", "5", "8", "10", "29", "2"]


# -- the fleet ---------------------------------------------------------------------------------


def _seen(from_state: str, to_state: str, seq: int) -> TransitionSeen:
    return TransitionSeen("s3/us-east-1", from_state, to_state, "", seq)


def _fleet(shared: bool, transitions: list[tuple[int, TransitionSeen]]) -> FleetRecord:
    return FleetRecord(
        title="shared" if shared else "alone",
        shared=shared,
        processes=2,
        phases=[_phase("healthy", 4, 0, success=4), _phase("outage: 503", 9, 6, error=6)],
        probes={"recovery": 2 if shared else 4, "outage: 503": 1},
        transitions=transitions,
        final_states={0: "closed", 1: "closed"},
    )


def test_with_a_store_the_fleets_opening_counts_once_however_many_processes_saw_it() -> None:
    shared = _fleet(
        True,
        [
            (0, _seen("CLOSED", "OPEN", 1)),
            (1, _seen("CLOSED", "OPEN", 1)),
            (0, _seen("OPEN", "HALF_OPEN", 2)),
            (0, _seen("HALF_OPEN", "OPEN", 3)),  # a failed probe: no new opening
        ],
    )
    alone = _fleet(False, [(0, _seen("CLOSED", "OPEN", 1)), (1, _seen("CLOSED", "OPEN", 1))])
    assert (shared.openings, shared.processes_opened) == (1, 2)
    assert (alone.openings, alone.processes_opened) == (2, 2)


def test_the_fleet_comparison_and_verdict() -> None:
    alone = _fleet(False, [(0, _seen("CLOSED", "OPEN", 1)), (1, _seen("CLOSED", "OPEN", 1))])
    shared = _fleet(True, [(0, _seen("CLOSED", "OPEN", 7)), (1, _seen("CLOSED", "OPEN", 7))])
    rows = _texts(report.fleet_comparison([alone, shared], failure_threshold=5))
    assert rows[2].split() == ["run", "failed", "calls", "openings", "probes", "closed"]
    assert rows[3].split() == ["alone", "6", "2", "4", "2/2"]
    assert rows[4].split() == ["shared", "6", "1", "2", "2/2"]
    assert report.fleet_verdict(shared, ok="fine") == ([("fine", "green")], True)
    shared.final_states[1] = "open"
    lines, passed = report.fleet_verdict(shared, ok="fine")
    assert not passed
    assert _texts(lines) == ["FAILED: 1 of 2 processes did not close."]


# -- the header ------------------------------------------------------------------------------


def test_the_run_header_says_how_the_plugin_is_installed_and_what_came_from_the_environment() -> (
    None
):
    from botocore_resilience.config import Settings
    from botocore_resilience.demo import header
    from botocore_resilience.demo.options import DemoOptions

    environ = {"BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "7", "AWS_RETRY_MODE": "legacy"}
    settings = Settings.from_env(environ, recovery_timeout=2.5, failure_rate=20.0, window=4.0)
    lines = _texts(
        header.run_header(
            title="run 2: with failure_rate=20",
            settings=settings,
            options=DemoOptions(),
            overrides={"failure_rate": 20.0, "window": 4.0},
            environ=environ,
            ignored={"AWS_RETRY_MODE": "the demo sets its own retries"},
            mode="standard",
            attempts=3,
            serving=False,
            first=False,
        )
    )
    assert lines[1] == "==== run 2: with failure_rate=20 ===="
    assert lines[3].endswith('retry_mode="standard", max_attempts=3, failure_rate=20, window=4)')
    assert lines[4].endswith("7 consecutive failed calls open it;")
    assert "so do 20% failed calls over 4 s, once at least 20 calls were judged;" in lines[5]
    assert lines[7].endswith("from the environment: BOTOCORE_RESILIENCE_FAILURE_THRESHOLD=7")
    assert lines[8].endswith("ignored: AWS_RETRY_MODE=legacy (the demo sets its own retries)")
    assert not any(line.startswith("  retries") for line in lines)  # said by the first run
    assert lines[-1].split() == [
        "time",
        "success",
        "error",
        "circuit_open",
        "retries",
        "sent",
        "circuit",
    ]


def test_watching_routes_the_plugins_records_to_the_demo_and_restores_the_logger() -> None:
    import logging

    from botocore_resilience.demo.events import LogWatcher, watching
    from botocore_resilience.logs import log_transition

    seen: list[TransitionSeen] = []
    logger = logging.getLogger("botocore_resilience")
    before = logger.level, logger.propagate, list(logger.handlers)
    watcher = LogWatcher(5, seen.append, lambda reason: None, lambda message: None)
    with watching(watcher):
        log_transition(_transition(CircuitState.CLOSED, CircuitState.OPEN, 5, "503 SlowDown"), 60)
    log_transition(_transition(CircuitState.OPEN, CircuitState.HALF_OPEN, 0, ""), 60)
    assert [(s.from_state, s.to_state) for s in seen] == [("CLOSED", "OPEN")]
    assert (logger.level, logger.propagate, logger.handlers) == before
