"""The Redis store on a real ``redis-server``: atomic transitions, leases, pub/sub, failure.

Two store objects on one server stand for two processes here, where the claim is about
the store's operations; the claims about a fleet of processes are in ``test_fleet.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from botocore_resilience.store import FleetState, StoreUnavailable, open_store, parse_state_url
from botocore_resilience.store.keys import probes_key, state_key
from botocore_resilience.store.redis_store import RedisStateStore

from .redis_servers import RedisCluster, RedisServer
from .waits import wait_until

DEADLINE = 30.0
NAME = "s3/us-east-1"


class Recorder:
    """What a store reported: up/down changes and error kinds."""

    def __init__(self) -> None:
        self.up: list[bool] = []
        self.errors: list[str] = []

    def on_up(self, up: bool) -> None:
        self.up.append(up)

    def on_error(self, kind: str) -> None:
        self.errors.append(kind)


def _store(url: str, timeout: float = 5.0, recorder: Any = None) -> RedisStateStore:
    recorder = recorder or Recorder()
    store = open_store(
        parse_state_url(url), timeout, on_up=recorder.on_up, on_error=recorder.on_error
    )
    assert isinstance(store, RedisStateStore)
    return store


@pytest.fixture
def stores(redis_server: RedisServer) -> Iterator[Callable[..., RedisStateStore]]:
    made: list[RedisStateStore] = []

    def make(timeout: float = 5.0, recorder: Any = None) -> RedisStateStore:
        store = _store(redis_server.url, timeout, recorder)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def test_failures_are_counted_across_stores_and_only_the_current_seq_moves(
    stores: Callable[..., RedisStateStore],
) -> None:
    a, b = stores(), stores()
    assert a.add_failure(NAME, 0).failures == 1
    assert b.add_failure(NAME, 0).failures == 2
    assert a.load(NAME).state == "closed"  # counting never moves: the policy decides
    opened = a.move(NAME, 0, "open", "503 SlowDown", 60.0, False)
    assert (opened.state, opened.from_state, opened.seq, opened.applied) == (
        "open",
        "closed",
        1,
        True,
    )
    assert opened.cause == "503 SlowDown"
    assert opened.remaining == 60.0  # measured on the store's clock, in the same script
    # The same decision made elsewhere on the same seq comes second: compare-and-set.
    second = b.move(NAME, 0, "open", "503", 60.0, False)
    assert (second.applied, second.seq, second.from_state) == (False, 1, None)
    # A failure of the closed generation that arrives late changes nothing.
    late = b.add_failure(NAME, 0)
    assert (late.applied, late.state, late.seq, late.failures) == (False, "open", 1, 2)


def test_a_success_anywhere_resets_the_count(stores: Callable[..., RedisStateStore]) -> None:
    a, b = stores(), stores()
    a.add_failure(NAME, 0)
    a.add_failure(NAME, 0)
    cleared = b.clear_failures(NAME, 0)
    assert (cleared.failures, cleared.applied) == (0, True)
    assert a.add_failure(NAME, 0).failures == 1


def test_concurrent_failures_count_each_and_concurrent_moves_happen_once(
    stores: Callable[..., RedisStateStore],
) -> None:
    store_list = [stores() for _ in range(4)]
    with ThreadPoolExecutor(16) as pool:
        counts = list(pool.map(lambda i: store_list[i % 4].add_failure(NAME, 0), range(64)))
        moves = list(
            pool.map(
                lambda i: store_list[i % 4].move(NAME, 0, "open", "503", 60.0, False), range(16)
            )
        )
    assert sorted(r.failures for r in counts) == list(range(1, 65))
    assert len([r for r in moves if r.applied]) == 1
    assert {r.seq for r in moves} == {1}


def _open(store: RedisStateStore, period: float = 0.001) -> FleetState:
    opened = store.move(NAME, store.load(NAME).seq, "open", "503", period, False)
    assert opened.applied
    return opened


def _half_open(store: RedisStateStore, token: str, max_calls: int = 1) -> FleetState:
    """Ask for a probe until the open period (1 ms on the store's clock) has run out."""
    result: list[FleetState] = []

    def granted() -> bool:
        result[:] = [store.admit(NAME, max_calls, 60, token)]
        return result[0].state != "open"

    wait_until(granted, "the open period to end")
    return result[0]


def test_admit_on_a_closed_circuit_changes_nothing(
    stores: Callable[..., RedisStateStore],
) -> None:
    closed = stores().admit(NAME, 1, 60, "t")
    assert (closed.state, closed.granted, closed.probes) == ("closed", False, 0)


def test_an_open_circuit_admits_nothing_until_its_period_ends_on_the_store_clock(
    stores: Callable[..., RedisStateStore],
) -> None:
    a = stores()
    _open(a, period=60.0)
    refused = a.admit(NAME, 1, 60, "t")
    assert (refused.state, refused.granted) == ("open", False)
    assert 59 < refused.remaining <= 60


def test_probes_are_leased_fleet_wide(stores: Callable[..., RedisStateStore]) -> None:
    a, b = stores(), stores()
    _open(a)
    first = _half_open(a, "a-1", max_calls=2)
    assert (first.state, first.granted, first.from_state) == ("half_open", True, "open")
    second = b.admit(NAME, 2, 60, "b-1")
    assert second.granted
    third = b.admit(NAME, 2, 60, "b-2")
    assert not third.granted
    assert 59 < third.wait <= 60  # until the first lease ends
    assert third.probes == 2


def test_a_lost_probe_frees_its_slot_when_its_lease_ends(
    stores: Callable[..., RedisStateStore], redis_server: RedisServer
) -> None:
    a, b = stores(), stores()
    _open(a)
    lost = _half_open(a, "lost", max_calls=1)
    assert lost.granted
    a.lease(NAME, "lost", 0.05)  # the caller said its call may take 50 ms at most
    # Its owner never reports (killed): once the lease ran out on the store's clock, the
    # slot goes to someone else.
    wait_until(lambda: b.admit(NAME, 1, 60, "b-2").granted, "the lease to run out")
    # ... and the late outcome of the lost probe changes nothing.
    late = a.finish_probe(NAME, lost.seq, "lost", False)
    assert (late.applied, late.state, late.failures) == (False, "half_open", 0)
    assert redis_server.cli("zcard", probes_key(NAME)).strip() == "1"


def test_probe_outcomes_count_in_their_period_and_slots_outlive_it(
    stores: Callable[..., RedisStateStore],
) -> None:
    a, b = stores(), stores()
    _open(a)
    p1 = _half_open(a, "a-1", max_calls=2)
    assert b.admit(NAME, 2, 60, "b-1").granted
    after_one = a.finish_probe(NAME, p1.seq, "a-1", True)
    assert (after_one.applied, after_one.state, after_one.successes) == (True, "half_open", 1)
    # The policy closes (a move); b's probe, still in flight, keeps its slot ...
    closed = a.move(NAME, p1.seq, "closed", "1 successful probes", 0.0, False)
    assert (closed.state, closed.from_state, closed.failures, closed.probes) == (
        "closed",
        "half_open",
        0,
        1,
    )
    # ... and its outcome, from a period that is over, frees it and counts nothing.
    late = b.finish_probe(NAME, p1.seq, "b-1", False)
    assert (late.applied, late.state, late.failures, late.probes) == (False, "closed", 0, 0)


def test_reopenings_grow_with_each_failed_half_open_period_and_reset_on_close(
    stores: Callable[..., RedisStateStore],
) -> None:
    a = stores()
    _open(a)
    reopenings = []
    for round_ in range(3):
        probe = _half_open(a, f"p{round_}")
        failed = a.finish_probe(NAME, probe.seq, f"p{round_}", False)
        assert (failed.applied, failed.failures) == (True, 1 + round_)
        reopened = a.move(NAME, probe.seq, "open", "503", 0.001, False)
        assert (reopened.state, reopened.from_state) == ("open", "half_open")
        reopenings.append(reopened.reopenings)
    assert reopenings == [1, 2, 3]
    probe = _half_open(a, "last")
    closed = a.move(NAME, probe.seq, "closed", "reset", 0.0, False)
    assert (closed.reopenings, closed.failures) == (0, 0)


def test_the_open_period_is_the_callers_on_the_store_clock(
    stores: Callable[..., RedisStateStore],
) -> None:
    # The policy draws the period (jitter included); the store times it.
    assert stores().move(NAME, 0, "open", "503", 10.5, False).remaining == 10.5


def test_force_open_rejects_every_probe_until_closed(
    stores: Callable[..., RedisStateStore],
) -> None:
    a = stores()
    forced = a.force(NAME, "open", "forced")
    assert (forced.state, forced.from_state, forced.cause) == ("forced_open", "closed", "forced")
    assert not a.admit(NAME, 1, 60, "x").granted
    closed = a.force(NAME, "closed", "reset")
    assert (closed.state, closed.from_state) == ("closed", "forced_open")


def test_a_forced_move_holds_the_circuit_open(stores: Callable[..., RedisStateStore]) -> None:
    a = stores()
    forced = a.move(NAME, 0, "open", "forced", 0.0, True)
    assert (forced.state, forced.applied) == ("forced_open", True)
    assert not a.admit(NAME, 1, 60, "x").granted


def test_every_change_is_published_to_watchers(stores: Callable[..., RedisStateStore]) -> None:
    a, b = stores(), stores()
    seen: list[FleetState] = []
    rejoined = threading.Event()
    a.watch(NAME, seen.append, rejoined.set)
    assert a.wait_until_subscribed(DEADLINE)  # everything after this is delivered
    for _ in range(3):
        b.add_failure(NAME, 0)
    b.move(NAME, 0, "open", "503", 60.0, False)
    wait_until(lambda: len(seen) == 4, "four published changes")
    assert [s.failures for s in seen] == [1, 2, 3, 3]
    assert (seen[-1].state, seen[-1].from_state) == ("open", "closed")
    assert seen[-1].version > seen[0].version


def test_subscribed_means_every_watcher_has_rejoined(redis_server: RedisServer) -> None:
    # A test (or tool) that waits for the subscription and then clears its "rejoined"
    # flag must not see the flag set again by that same rejoin, still under way.
    armed, in_rejoin, release = threading.Event(), threading.Event(), threading.Event()

    def rejoin() -> None:
        if armed.is_set():
            in_rejoin.set()
            release.wait(DEADLINE)

    store = open_store(parse_state_url(redis_server.url), 5.0)
    try:
        assert store.wait_until_subscribed(DEADLINE)
        store.watch(NAME, lambda state: None, rejoin)
        armed.set()
        redis_server.cli("client", "kill", "type", "pubsub")  # the store subscribes again
        assert in_rejoin.wait(DEADLINE)
        assert not store.wait_until_subscribed(0.2)  # its rejoin has not finished
        release.set()
        assert store.wait_until_subscribed(DEADLINE)
    finally:
        release.set()
        store.close()


def test_keys_hold_names_and_numbers_only(
    stores: Callable[..., RedisStateStore], redis_server: RedisServer
) -> None:
    a = stores()
    a.add_failure(NAME, 0)
    a.move(NAME, 0, "open", "503 SlowDown", 60.0, False)
    keys = sorted(redis_server.cli("--scan").split())
    assert keys == [state_key(NAME)]
    fields = redis_server.cli("hgetall", state_key(NAME)).split("\n")
    assert set(fields[0::2]) - {""} == {
        "st", "seq", "ver", "fails", "succ", "reop", "opened", "open_for", "cause",
    }  # fmt: skip
    assert 0 < int(redis_server.cli("pttl", state_key(NAME))) <= 7 * 24 * 3600 * 1000


def test_circuits_lists_every_circuit(stores: Callable[..., RedisStateStore]) -> None:
    a = stores()
    for name in ("s3/us-east-1", "dynamodb/eu-west-1", "odd{name}"):
        a.add_failure(name, 0)
    a.move("s3/us-east-1", 0, "open", "503", 60.0, False)
    listed = {s.circuit: (s.state, s.failures) for s in a.circuits()}
    assert listed == {
        "s3/us-east-1": ("open", 1),
        "dynamodb/eu-west-1": ("closed", 1),
        "odd{name}": ("closed", 1),
    }


# -- the store failing ---------------------------------------------------------------------


def _load_twice(store: RedisStateStore) -> None:
    store.load(NAME)
    store.load(NAME)


def test_a_dead_store_costs_one_failure_then_nothing_until_it_is_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    store = _store(redis_server.url, recorder=recorder)
    rejoined = threading.Event()
    store.watch(NAME, lambda state: None, rejoined.set)
    store.load(NAME)
    assert store.wait_until_subscribed(DEADLINE)
    rejoined.clear()
    redis_server.kill()
    with caplog.at_level(logging.INFO, logger="botocore_resilience"):
        with pytest.raises(StoreUnavailable):
            _load_twice(store)  # the thread may notice first, or this call does
        assert not store.available
        errors_then = len(recorder.errors)
        for _ in range(100):  # no wait, no attempt, no error counted
            with pytest.raises(StoreUnavailable):
                store.add_failure(NAME, 0)
        assert len(recorder.errors) == errors_then
        redis_server.start()  # same port: the store comes back
        assert rejoined.wait(DEADLINE)
    assert store.available
    assert store.load(NAME).state == "closed"
    assert recorder.up == [True, False, True]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "unavailable (connection)" in warnings[0].getMessage()
    store.close()


def test_an_outage_noticed_by_a_call_first_is_counted_once(
    stores: Callable[..., RedisStateStore],
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On a busy machine the store's thread, woken by its subscription's end, may run only
    # after a call noticed the outage. Held here as it wakes, it runs last, every time.
    from redis.client import PubSub

    armed, held, release = threading.Event(), threading.Event(), threading.Event()
    get_message = PubSub.get_message

    def held_when_it_fails(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return get_message(self, *args, **kwargs)
        except Exception:
            if armed.is_set():
                armed.clear()
                held.set()
                release.wait(DEADLINE)
            raise

    monkeypatch.setattr(PubSub, "get_message", held_when_it_fails)
    recorder = Recorder()
    store = stores(recorder=recorder)
    rejoined = threading.Event()
    store.watch(NAME, lambda state: None, rejoined.set)
    assert store.wait_until_subscribed(DEADLINE)
    rejoined.clear()
    armed.set()
    redis_server.kill()
    try:
        assert held.wait(DEADLINE)
        with pytest.raises(StoreUnavailable):
            store.load(NAME)
    finally:
        release.set()
    redis_server.start()
    assert rejoined.wait(DEADLINE)  # the thread noticed, reconnected and rejoined
    assert recorder.errors == ["connection"]
    assert recorder.up == [True, False, True]


def test_a_hung_store_times_out_and_is_rejoined_when_it_resumes(
    redis_server: RedisServer,
) -> None:
    recorder = Recorder()
    store = _store(redis_server.url, 0.05, recorder)
    rejoined = threading.Event()
    store.watch(NAME, lambda state: None, rejoined.set)
    store.load(NAME)
    assert store.wait_until_subscribed(DEADLINE)
    rejoined.clear()
    redis_server.hang()
    try:
        with pytest.raises(StoreUnavailable):
            store.add_failure(NAME, 0)
        assert "timeout" in recorder.errors
        with pytest.raises(StoreUnavailable):
            store.add_failure(NAME, 0)  # at once: known down
    finally:
        redis_server.resume()
    assert rejoined.wait(DEADLINE)
    # The call the timed-out operation belonged to was judged locally meanwhile. Whether that
    # operation still ran once the server resumed is the server's affair (it was written to a
    # socket the client has since closed: Redis may or may not read it first), so the fleet
    # holds 0 or 1 failures, never 2: the store did not resend it on rejoin.
    # (Read with a patient store: 0.05 s is short for a busy machine once the server answers.)
    checker = _store(redis_server.url)
    assert checker.load(NAME).failures in (0, 1)
    checker.close()
    store.close()


def test_a_store_that_answers_errors_is_treated_as_down(redis_server: RedisServer) -> None:
    recorder = Recorder()
    store = _store(redis_server.url, recorder=recorder)
    store.load(NAME)
    redis_server.cli("set", state_key(NAME), "not a hash")  # WRONGTYPE for the script
    with pytest.raises(StoreUnavailable):
        store.add_failure(NAME, 0)
    assert recorder.errors == ["response"]
    store.close()


def test_a_wrong_password_never_shows_in_errors_or_logs(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(str(tmp_path), password="right-pw-123").start()
    try:
        wrong = server.url.replace("right-pw-123", "wrong-pw-456")
        store = _store(wrong)
        caplog.set_level(logging.DEBUG, logger="botocore_resilience")
        with pytest.raises(StoreUnavailable) as caught:
            store.load(NAME)
        text = caplog.text + str(caught.value) + repr(caught.value) + repr(store)
        assert "wrong-pw-456" not in text
        right = _store(server.url)
        assert right.load(NAME).state == "closed"
        assert "right-pw-123" not in repr(right)
        right.close()
        store.close()
    finally:
        server.stop()


# -- Redis Cluster ---------------------------------------------------------------------------


def test_cluster_keys_of_one_circuit_share_a_slot(redis_cluster: RedisCluster) -> None:
    node = redis_cluster.nodes[0]
    for name in ["s3/us-east-1", "s3/eu-west-1/photos", "odd{name}", "dynamodb/x"]:
        slots = {
            node.cli("cluster", "keyslot", key).strip()
            for key in (state_key(name), probes_key(name))
        }
        assert len(slots) == 1, name


def test_cluster_counts_leases_and_publishes_across_masters(
    redis_cluster: RedisCluster,
) -> None:
    a, b = _store(redis_cluster.url), _store(redis_cluster.url)
    names = [f"s3/region-{i}" for i in range(12)]  # spread over the three masters' slots
    slots = {redis_cluster.nodes[0].cli("cluster", "keyslot", state_key(n)).strip() for n in names}
    assert len(slots) > 3
    seen: list[FleetState] = []
    rejoined = threading.Event()
    for name in names:
        a.watch(name, seen.append, rejoined.set)
    assert a.wait_until_subscribed(DEADLINE)
    try:
        for name in names:
            a.add_failure(name, 0)
            opened = b.move(name, 0, "open", "503", 0.001, False)
            assert opened.state == "open", name
        wait_until(lambda: len([s for s in seen if s.state == "open"]) == len(names), "all opens")
        listed = {s.circuit for s in a.circuits()}
        assert set(names) <= listed
    finally:
        a.close()
        b.close()
