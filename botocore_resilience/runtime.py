"""The runtime the handlers read, and the one factory that builds it for every entry point.

A :class:`Runtime` is everything a call needs: the settings, the clock (as the one
callable that reads it), the circuits, the observers (metrics and logs) and the
retry gap filler. :func:`build_runtime` makes one from the environment and keyword
options; ``install()``, ``install_global()`` and the client plugin all call it, so
they read settings, warn about misspelt variables and choose their backends the same
way. Building has no side effect beyond registering metrics: serving ``/metrics`` is
a separate step of installing (:func:`serve_metrics`).

Every backend is chosen here and nowhere else:

* the metrics sink in :func:`_metrics_sink` (Prometheus, OpenTelemetry with
  ``metrics="otel"``, or none), and the state store's beside it in
  :func:`_store_sink` (with ``state_url`` only),
* the subscribers in :func:`_subscribers` (metrics, logs, and the ``on_transition``
  callback last),
* the breaker policy in :func:`_policy` (consecutive failures, the failure-rate
  window, open periods that grow and their jitter; slow calls are judged by the
  handlers, from ``slow_call_duration``),
* where circuit state lives in :func:`_circuits` (this process, shared by equal
  installations; with ``state_url``, a store shared by a fleet).
"""

from __future__ import annotations

import os
import random
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Optional

from . import _fork
from .breaker import BackendFactory, BreakerPolicy, CircuitBreaker, Transition
from .circuits import BreakerFactory, Circuits
from .clock import MONOTONIC, Clock, reader_of
from .config import Settings, unknown_variable_warnings
from .exposition import start_metrics_server
from .logs import logger
from .metrics import MetricsSink, metrics_for
from .observers import LogObserver, MetricsObserver, Observer, Observers, TransitionCallback
from .retries import GapFiller
from .store.metrics import StoreSink, store_metrics_for
from .store.wiring import shared_state_factory

__all__ = ["Runtime", "build_runtime", "serve_metrics"]


class Runtime:
    """What the handlers read on every call; built by :func:`build_runtime`, then never changed.

    A second ``install()`` on a target swaps in a new runtime rather than editing this one.
    """

    __slots__ = (
        "circuits",
        "clock",
        "environ",
        "exempt",
        "gap_filler",
        "jitter",
        "metrics",
        "now",
        "observers",
        "settings",
        "shared_state",
    )

    def __init__(
        self,
        settings: Settings,
        *,
        environ: Mapping[str, str],
        clock: Clock,
        jitter: Callable[[], float],
        metrics: Optional[MetricsSink],
        observers: Observers,
        circuits: Optional[Circuits],
    ) -> None:
        self.settings = settings
        self.environ = environ
        """Where the settings were read from (the ``/metrics`` server reads it too)."""
        self.clock = clock
        self.now = reader_of(clock)
        """Seconds on the runtime's clock: :func:`time.monotonic` itself by default."""
        self.jitter = jitter
        self.metrics = metrics
        """The metrics sink, or ``None`` with ``metrics=off`` (or when it could not register)."""
        self.observers = observers
        self.circuits = circuits
        """``None`` with ``breaker=off``."""
        self.gap_filler = GapFiller(jitter)
        self.exempt = frozenset(filter(None, settings.exempt_operations.split(",")))
        """Operations an open circuit lets through (docs/how-to/critical-and-best-effort.md)."""
        self.shared_state = circuits is not None and settings.state_url is not None
        """Circuits live in a store: the handlers mark each call's bounds (``state.begin_call``),
        so that no call waits on the store more than once."""

    def __repr__(self) -> str:
        return f"Runtime({self.settings!r})"


def build_runtime(
    environ: Optional[Mapping[str, str]] = None,
    *,
    registry: Any = None,
    clock: Optional[Clock] = None,
    jitter: Optional[Callable[[], float]] = None,
    meter_provider: Any = None,
    on_transition: Optional[Callable[[Transition], None]] = None,
    **options: Any,
) -> Runtime:
    """Read the settings and build the runtime of one installation.

    Args:
        environ: where ``BOTOCORE_RESILIENCE_*`` are read (default ``os.environ``).
        registry: the ``prometheus_client.CollectorRegistry`` (default: its ``REGISTRY``).
        clock: anything with ``monotonic()`` (default :data:`~botocore_resilience.clock.MONOTONIC`).
        jitter: the random source in ``[0, 1)`` of the backoff before retries we add,
            and of the open periods' extra
            (default :func:`random.random`).
        meter_provider: the OpenTelemetry ``MeterProvider`` used with ``metrics="otel"``
            (default: the global one).
        on_transition: called with each :class:`~botocore_resilience.Transition` of this
            installation's circuits, after metrics and logs, outside every lock; what it
            raises is logged and ignored (:class:`TransitionCallback`).
        **options: settings by option name, overriding the environment.

    Raises:
        ConfigurationError: a setting is invalid (before anything is built or logged).

    Unknown ``BOTOCORE_RESILIENCE_*`` variables (likely typos) are logged as warnings.

    >>> from prometheus_client import CollectorRegistry
    >>> runtime = build_runtime({}, registry=CollectorRegistry(), failure_threshold=3)
    >>> runtime.settings.failure_threshold, runtime.observers
    (3, Observers(['metrics', 'logging']))
    """
    environ = os.environ if environ is None else environ
    settings = Settings.from_env(environ, **options)
    _warn_unknown_variables(environ)
    clock = MONOTONIC if clock is None else clock
    jitter = random.random if jitter is None else jitter
    metrics = _metrics_sink(settings, registry, meter_provider)
    observers = Observers(_subscribers(settings, metrics, on_transition))
    circuits = None
    if settings.breaker != "off":
        store_metrics = _store_sink(settings, registry, meter_provider) if metrics else None
        circuits = _circuits(
            settings,
            clock,
            metrics,
            observers,
            store_metrics,
            jitter=jitter,
            listener=on_transition,
        )
    return Runtime(
        settings,
        environ=environ,
        clock=clock,
        jitter=jitter,
        metrics=metrics,
        observers=observers,
        circuits=circuits,
    )


def serve_metrics(runtime: Runtime, registry: Any = None) -> None:
    """Serve ``/metrics`` if the runtime's settings ask for it (``metrics_port``).

    A step of installing, called once the runtime is built; never raises (a port taken
    by a sibling worker is logged, not fatal), and starts at most one server per process.
    """
    settings = runtime.settings
    if runtime.metrics is None or settings.metrics != "prometheus" or settings.metrics_port is None:
        return
    start_metrics_server(
        settings.metrics_port, settings.metrics_addr, registry, environ=runtime.environ
    )


def _warn_unknown_variables(environ: Mapping[str, str]) -> None:
    for warning in unknown_variable_warnings(environ):
        logger.warning("%s", warning)


def _metrics_sink(settings: Settings, registry: Any, meter_provider: Any) -> Optional[MetricsSink]:
    """The metrics backend: Prometheus, OpenTelemetry, or none."""
    if not settings.enabled or settings.metrics == "off":  # a disabled install registers nothing
        return None
    try:
        if settings.metrics == "otel":
            # Imported here: without the otel extra nothing imports OpenTelemetry.
            from . import otel_metrics

            return otel_metrics.otel_metrics_for(
                meter_provider, settings.metrics_namespace, max_buckets=settings.max_circuits
            )
        return metrics_for(registry, settings.metrics_namespace, max_buckets=settings.max_circuits)
    except Exception:
        # A registry that already holds a foreign collector under one of our names: the
        # application keeps running, without our metrics, and says why once.
        logger.warning("metrics disabled", exc_info=True)
        return None


def _store_sink(settings: Settings, registry: Any, meter_provider: Any) -> Optional[StoreSink]:
    """Where the state store's two families go: beside the other metrics (Prometheus or
    OpenTelemetry), only for an installation with a ``state_url``."""
    if settings.state_url is None:
        return None
    try:
        if settings.metrics == "otel":
            from . import otel_metrics

            return otel_metrics.otel_store_metrics_for(meter_provider, settings.metrics_namespace)
        return store_metrics_for(registry, settings.metrics_namespace)
    except Exception:
        logger.warning("state store metrics disabled", exc_info=True)
        return None


def _subscribers(
    settings: Settings,
    metrics: Optional[MetricsSink],
    on_transition: Optional[Callable[[Transition], None]] = None,
) -> list[tuple[str, Observer]]:
    """Who hears calls, retries and transitions, in calling order: the user's callback
    last, so that it sees the metrics and logs already telling the new state."""
    subscribers: list[tuple[str, Observer]] = []
    if metrics is not None:
        subscribers.append(("metrics", MetricsObserver(metrics)))
    subscribers.append(("logging", LogObserver(settings.recovery_timeout)))
    if on_transition is not None:
        subscribers.append(("on_transition", TransitionCallback(on_transition)))
    return subscribers


def _policy(settings: Settings, jitter: Optional[Callable[[], float]] = None) -> BreakerPolicy:
    """The breaker policy the settings describe; ``jitter`` draws the open periods' extra."""
    return BreakerPolicy(
        failure_threshold=settings.failure_threshold,
        recovery_timeout=settings.recovery_timeout,
        success_threshold=settings.success_threshold,
        half_open_max_calls=settings.half_open_max_calls,
        enforce=settings.breaker == "on",
        failure_rate=settings.failure_rate,
        window=settings.window,
        minimum_calls=settings.minimum_calls,
        recovery_timeout_max=settings.recovery_timeout_max,
        jitter=jitter,
    )


# Installations with the same settings, metrics and clock share their circuits: a service
# that is down is down for the whole process, and an application that installs on every
# session it makes must still trip one circuit, not start a fresh one per session. The
# key holds the metrics sink and the clock themselves (they hash by identity), so they
# live exactly as long as the circuits that report to them and read them.
_shared: weakref.WeakValueDictionary[tuple[Any, ...], Circuits] = weakref.WeakValueDictionary()
_shared_lock = _fork.new_lock()


def _breakers_on(backend: BackendFactory) -> BreakerFactory:
    """Circuits whose state lives where ``backend`` keeps it (the same policy as ever)."""

    def make(
        name: str, policy: BreakerPolicy, clock: Clock, observer: Callable[[Transition], None]
    ) -> CircuitBreaker:
        return CircuitBreaker(name, policy, clock, observer, backend=backend)

    return make


def _circuits(
    settings: Settings,
    clock: Clock,
    metrics: Optional[MetricsSink],
    observers: Observers,
    store_metrics: Optional[StoreSink] = None,
    *,
    jitter: Optional[Callable[[], float]] = None,
    listener: Optional[Callable[[Transition], None]] = None,
) -> Circuits:
    """The circuits of an installation: in this process, shared by equal installations;
    with ``state_url``, each one's state lives in that store, shared by the fleet."""
    policy = _policy(settings, jitter)
    url = settings.state_url
    store_key = (url.unredacted(), settings.state_timeout) if url is not None else None
    # The policy holds the jitter source, and the user's on_transition callback is in the
    # key too: circuits report to the observers of the installation that made them, so an
    # installation with a callback of its own gets circuits of its own.
    key = (
        settings.name,
        settings.scope,
        settings.max_circuits,
        policy,
        metrics,
        clock,
        store_key,
        listener,
    )
    # Raises ConfigurationError (before anything is registered) without redis-py.
    backend = shared_state_factory(settings, metrics=store_metrics)
    factory = None if backend is None else _breakers_on(backend)
    with _shared_lock:
        circuits = _shared.get(key)
        if circuits is None:
            circuits = _shared[key] = Circuits(
                scope=settings.scope,
                prefix=settings.name,
                policy=policy,
                clock=clock,
                observer=observers.transition,
                on_created=observers.circuit_added,
                on_removed=observers.circuit_removed,
                max_circuits=settings.max_circuits,
                breaker_factory=factory,
            )
        return circuits
