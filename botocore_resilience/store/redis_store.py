"""The Redis state store: one Lua script, one pub/sub channel, one background thread.

Everything that changes a circuit runs as one ``EVAL`` of ``script.lua`` on the
server, atomically, on the server's clock, so no two processes ever read-modify-write
the same circuit at once and ``recovery_timeout`` is measured on one clock for the
whole fleet. ``EVAL`` (not ``EVALSHA``) keeps every operation at exactly one round
trip, even just after the server restarted and forgot its script cache: that is what
lets ``state_timeout`` bound the wait.

Failure handling, which is the point of this module:

- Each operation is bounded by ``state_timeout`` (connect and read), and redis-py's
  own retries are switched off, so one operation never waits longer than that.
- The first failure marks the store *down*: one WARNING, ``N_state_store_up`` 0, and
  every later operation fails at once with :class:`StoreUnavailable` (no waiting at
  all) while the background thread pings the server with a growing pause.
- When it answers, the thread re-subscribes and tells every watched circuit to
  re-read its fleet state (*rejoin*); INFO, ``N_state_store_up`` 1.

The thread also carries the subscription that brings every published change to the
circuits of this process. It starts on first use and again, lazily, in a forked child.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import logging
import os
import threading
import time
import weakref
from collections import deque
from importlib import resources
from typing import Any, Callable, Optional

from ..state import waited
from .base import FleetState, StoreUnavailable, StoreWatcher
from .keys import CHANNEL, STATE_PATTERN, circuit_of, probes_key, state_key
from .url import StateUrl

__all__ = ["RedisStateStore", "error_kind"]

logger = logging.getLogger("botocore_resilience")

SCRIPT = resources.files(__package__).joinpath("script.lua").read_text(encoding="utf-8")

_FIRST_PAUSE = 0.05  # seconds between reconnection attempts, doubling up to _MAX_PAUSE
_MAX_PAUSE = 1.0
_POLL = 0.25  # how long the thread blocks on the subscription before checking its flags


def error_kind(error: BaseException) -> str:
    """The ``error`` label for a failed store operation: one of ``ERROR_KINDS``."""
    import socket

    from redis import exceptions

    if isinstance(error, (exceptions.TimeoutError, socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(error, (exceptions.ConnectionError, ConnectionError, OSError)):
        return "connection"
    if isinstance(error, exceptions.ResponseError):
        return "response"
    name = type(error).__name__
    if "Cluster" in name or "Slot" in name:  # ClusterDownError, SlotNotCoveredError, ...
        return "connection"
    return "other"


def _client_options(timeout: float) -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # redis-py >= 6 retries 3 times by default: each retry would add a full timeout.
        "retry": Retry(NoBackoff(), 0),
        "retry_on_timeout": False,
    }


class _Subscription:
    """One circuit's watchers, held weakly so that an evicted circuit can go."""

    __slots__ = ("rejoins", "watchers")

    def __init__(self) -> None:
        self.watchers: list[Any] = []
        self.rejoins: list[Any] = []


def _weak(callback: Callable[..., None]) -> Any:
    if inspect.ismethod(callback):
        return weakref.WeakMethod(callback)
    return lambda: callback


class RedisStateStore:
    """A :class:`~botocore_resilience.store.base.StateStore` on Redis, Valkey, ElastiCache
    or MemoryDB (``?cluster=true`` for cluster mode).

    Args:
        url: the parsed ``state_url``.
        timeout: ``state_timeout``, seconds.
        on_up: told ``True``/``False`` whenever the store comes up or goes down.
        on_error: told the kind of every failed operation.
    """

    def __init__(
        self,
        url: StateUrl,
        timeout: float,
        *,
        on_up: Callable[[bool], None] = lambda up: None,
        on_error: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._url = url
        self._timeout = timeout
        self._on_up = on_up
        self._on_error = on_error
        self._client: Any = None
        self._lock = threading.Lock()
        self._subscriptions: dict[str, _Subscription] = {}
        self._up = True
        self._closed = False
        self._thread: Optional[threading.Thread] = None
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._tasks: deque[Callable[[], None]] = deque()
        self._subscribed = threading.Event()
        self._has_tasks = threading.Event()
        self._idle = threading.Event()  # set while no queued operation waits or runs
        self._idle.set()
        self._worker: Optional[threading.Thread] = None
        _stores.add(self)
        self._on_up(True)
        # Started now, at install: starting a thread waits for it, and the first store
        # operation may come from an asyncio event loop, which must never wait.
        self._ensure_thread()
        self._ensure_worker()

    # -- the operations ----------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self._up and not self._closed

    @property
    def url(self) -> StateUrl:
        """The URL, redacted when shown."""
        return self._url

    def load(self, circuit: str) -> FleetState:
        return self._run(circuit, "load")

    def add_failure(self, circuit: str, seq: int) -> FleetState:
        return self._run(circuit, "add_failure", seq)

    def clear_failures(self, circuit: str, seq: int) -> FleetState:
        return self._run(circuit, "clear_failures", seq)

    def move(
        self, circuit: str, seq: int, to: str, cause: str, open_for: float, forced: bool
    ) -> FleetState:
        if to not in ("closed", "open", "half_open"):
            raise ValueError(f"to must be 'closed', 'open' or 'half_open', not {to!r}")
        return self._run(circuit, "move", seq, to, cause, _ms(open_for), 1 if forced else 0)

    def admit(self, circuit: str, max_calls: int, lease: float, token: str) -> FleetState:
        return self._run(circuit, "admit", max_calls, _ms(lease), token)

    def finish_probe(
        self, circuit: str, seq: int, token: str, succeeded: Optional[bool]
    ) -> FleetState:
        result = "none" if succeeded is None else "success" if succeeded else "failure"
        return self._run(circuit, "finish_probe", seq, token, result)

    def lease(self, circuit: str, token: str, seconds: float) -> FleetState:
        return self._run(circuit, "lease", token, _ms(seconds))

    def release_later(self, circuit: str, token: str) -> None:
        """Free a probe slot whose call ended unheard, from the background thread: this is
        called from finalisers, which may run in any thread, even inside a lock."""
        self.submit(lambda: self._release(circuit, token))

    def _release(self, circuit: str, token: str) -> None:
        with contextlib.suppress(StoreUnavailable):  # else its lease frees it in the store
            self._run(circuit, "release", token)

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` soon on a thread of the store's own: for callers that must not wait
        on the network (an asyncio event loop, a finaliser, a call that waited once). Never
        blocks. What is still queued when the interpreter exits is run first (:meth:`flush`)."""
        self._idle.clear()
        self._tasks.append(task)
        self._ensure_worker()
        self._has_tasks.set()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the queued operations to be made; ``True`` if
        none is left. Run at interpreter exit: a short-lived process (an AWS CLI run, a
        Lambda invocation, a cron job) must not take the opening it decided with it."""
        deadline = time.monotonic() + timeout
        while self._tasks or not self._idle.is_set():
            if self._worker is None or self._closed or self._pid != os.getpid():
                return not self._tasks
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._idle.wait(min(left, _POLL))
        return True

    def _ensure_worker(self) -> None:
        if self._pid != os.getpid():
            self._after_fork()
        if self._worker is None and not self._closed:
            with self._lock:
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._work, name="botocore-resilience-store-tasks", daemon=True
                    )
                    self._worker.start()

    def _work(self) -> None:
        pid = os.getpid()
        while not self._closed and self._pid == pid:
            self._has_tasks.wait()
            self._has_tasks.clear()
            while self._tasks:
                try:
                    task = self._tasks.popleft()
                except IndexError:
                    break
                _safely(task)
            self._idle.set()

    def force(self, circuit: str, state: str, cause: str) -> FleetState:
        if state not in ("open", "closed"):
            raise ValueError(f"state must be 'open' or 'closed', not {state!r}")
        return self._run(circuit, "force", state, cause)

    def circuits(self) -> list[FleetState]:
        client = self._connected_client()
        names = set()
        try:
            for key in client.scan_iter(match=STATE_PATTERN, count=500):
                name = circuit_of(key.decode() if isinstance(key, bytes) else str(key))
                if name is not None:
                    names.add(name)
        except Exception as error:
            self._failed(error)
            raise StoreUnavailable(error_kind(error)) from None
        return [self.load(name) for name in sorted(names)]

    def _run(self, circuit: str, op: str, *args: object) -> FleetState:
        if not self._up or self._closed:
            raise StoreUnavailable("down")
        self._ensure_thread()
        waited()  # the calling AWS call's one round trip (see state.begin_call)
        try:
            client = self._connected_client()
            reply = client.eval(
                SCRIPT, 2, state_key(circuit), probes_key(circuit), op, CHANNEL, circuit, *args
            )
            return FleetState.from_json(reply)
        except StoreUnavailable:
            raise
        except Exception as error:
            self._failed(error)
            raise StoreUnavailable(error_kind(error)) from None

    def _connected_client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    # Built here, not in __init__: a cluster client reads the slot map when
                    # it is made, and install() must never wait for the store.
                    client = self._client = self._make_client()
        return client

    def _make_client(self) -> Any:
        options = _client_options(self._timeout)
        try:
            if self._url.cluster:
                import redis
                from redis.cluster import RedisCluster

                if int(redis.__version__.split(".")[0]) < 6:  # later: the retry object
                    options["cluster_error_retry_attempts"] = 0
                return RedisCluster.from_url(self._url.unredacted(), **options)
            import redis

            return redis.Redis.from_url(self._url.unredacted(), **options)
        except Exception as error:
            # redis-py may quote the URL it was given: keep only the kind.
            self._failed(error)
            raise StoreUnavailable(error_kind(error)) from None

    # -- going down and coming back ----------------------------------------------------

    def wait_until_subscribed(self, timeout: float) -> bool:
        """Block until this process hears the store's published changes and every watched
        circuit has read its fleet state again (for tools and tests; calls never wait for
        it). ``False`` if ``timeout`` passed first."""
        return self._subscribed.wait(timeout)

    def _failed(self, error: BaseException) -> None:
        kind = error_kind(error)
        self._subscribed.clear()
        _safely(self._on_error, kind)
        with self._lock:
            was_up, self._up = self._up, False
        if was_up:
            _safely(self._on_up, False)
            # The kind and the redacted URL only: redis-py's messages may quote the
            # address and, for some errors, what was sent.
            logger.warning(
                "botocore_resilience: state store %s unavailable (%s); circuits are judged "
                "by this process alone until it answers again",
                self._url,
                kind,
            )
        self._wake.set()

    def _came_back(self) -> None:
        with self._lock:
            was_up, self._up = self._up, True
        if not was_up:
            _safely(self._on_up, True)
            logger.info("botocore_resilience: state store %s answers again; rejoining", self._url)

    # -- watching ------------------------------------------------------------------------

    def watch(self, circuit: str, watcher: StoreWatcher, on_rejoin: Callable[[], None]) -> None:
        with self._lock:
            subscription = self._subscriptions.get(circuit)
            if subscription is None:
                subscription = self._subscriptions[circuit] = _Subscription()
            subscription.watchers.append(_weak(watcher))
            subscription.rejoins.append(_weak(on_rejoin))
        self._ensure_thread()

    def _dispatch(self, state: FleetState) -> None:
        subscription = self._subscriptions.get(state.circuit)
        if subscription is None:
            return
        for ref in list(subscription.watchers):
            watcher = ref()
            if watcher is None:
                self._drop(state.circuit, ref)
            else:
                _safely(watcher, state)

    def _drop(self, circuit: str, ref: Any) -> None:
        with self._lock:
            subscription = self._subscriptions.get(circuit)
            if subscription is None:
                return
            index = subscription.watchers.index(ref) if ref in subscription.watchers else -1
            if index >= 0:
                del subscription.watchers[index]
                del subscription.rejoins[index]
            if not subscription.watchers:
                del self._subscriptions[circuit]

    def _rejoin_all(self) -> None:
        with self._lock:
            rejoins = [ref for sub in self._subscriptions.values() for ref in sub.rejoins]
        for ref in rejoins:
            callback = ref()
            if callback is not None:
                _safely(callback)

    # -- the background thread -----------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():
            self._after_fork()
        if self._thread is None and not self._closed:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._serve, name="botocore-resilience-store", daemon=True
                    )
                    self._thread.start()

    def _after_fork(self) -> None:
        # The parent's thread does not exist here, and its lock may have been held by it.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._has_tasks = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = None
        self._worker = None
        self._pid = os.getpid()

    def _serve(self) -> None:
        pid = os.getpid()
        pubsub: Any = None
        pause = _FIRST_PAUSE
        while not self._closed and self._pid == pid:
            if pubsub is None or not self._up:
                pubsub = _close_quietly(pubsub)
                try:
                    client = self._connected_client()
                    if not self._up:
                        client.ping()
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(CHANNEL)
                except Exception as error:
                    pubsub = _close_quietly(pubsub)
                    if self._up:
                        self._failed(error)
                    self._wake.wait(pause)
                    self._wake.clear()
                    pause = min(pause * 2, _MAX_PAUSE)
                    continue
                pause = _FIRST_PAUSE
                self._came_back()
                # Anything published before the subscription was made is read again.
                self._rejoin_all()
                if self._up:  # only now: a waiter may rely on the circuits having re-read
                    self._subscribed.set()
            try:
                message = pubsub.get_message(timeout=_POLL)
            except Exception as error:
                pubsub = _close_quietly(pubsub)
                # Already down: an operation noticed first. One outage, one error counted,
                # whichever of them the machine happened to run first.
                if self._up:
                    self._failed(error)
                continue
            if message is not None and message.get("type") == "message":
                try:
                    state = FleetState.from_json(message["data"])
                except Exception:
                    logger.debug("botocore_resilience: ignoring a malformed store message")
                    continue
                self._dispatch(state)
        _close_quietly(pubsub)

    def close(self) -> None:
        """Stop the thread and drop the connections."""
        self._closed = True
        self._wake.set()
        self._has_tasks.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * _POLL + self._timeout)
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def __repr__(self) -> str:
        return f"RedisStateStore({str(self._url)!r}, up={self._up})"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _safely(callback: Callable[..., None], *args: Any) -> None:
    try:
        callback(*args)
    except Exception:
        logger.warning("botocore_resilience: state store callback failed", exc_info=True)


def _close_quietly(pubsub: Any) -> Any:
    """Close ``pubsub`` if there is one, ignoring errors; always ``None``."""
    if pubsub is not None:
        with contextlib.suppress(Exception):
            pubsub.close()
    return None


_stores: weakref.WeakSet[RedisStateStore] = weakref.WeakSet()


def _reinit_after_fork() -> None:
    for store in list(_stores):
        store._tasks.clear()  # the parent's operations: its own thread makes them
        store._after_fork()


_EXIT_WAIT = 1.0
"""Seconds an exiting interpreter gives each store's queued operations, on top of its
``state_timeout`` (each operation is bounded by it, and a failed one makes the rest fail
at once)."""


def _flush_at_exit() -> None:
    for store in list(_stores):
        with contextlib.suppress(Exception):
            store.flush(_EXIT_WAIT + store._timeout)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
atexit.register(_flush_at_exit)
