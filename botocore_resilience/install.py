"""``install()`` and friends: the one factory that wires everything together.

An :class:`Installation` is the runtime of one ``install()``: its settings, clock,
circuits, metrics and retry gap filler. It is *attached* to one target's event
system (a botocore session, or one client) through an :class:`EventHandlers` object
whose bound methods are registered with botocore ``unique_id``\\ s, so registering
twice is impossible. A second ``install()`` on the same target swaps the runtime
behind the same handlers (its options replace the earlier ones, also for clients
already created from that session); ``uninstall()`` unregisters them and switches
them off, so clients that copied them become plain botocore again.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Callable, Optional

from .breaker import BreakerPolicy, CircuitBreaker, Transition
from .circuits import Circuits
from .clock import MONOTONIC, Clock
from .config import Settings, unknown_variables
from .exposition import start_metrics_server
from .handlers import EventHandlers
from .logs import call_safely, log_transition, logger
from .metrics import NULL_METRICS, MetricsSink, metrics_for
from .retries import GapFiller, RetryDefaults, apply_retry_defaults, restore_retry_defaults

__all__ = ["Installation", "install", "uninstall"]

_UID = "botocore_resilience"

# (event, handler method name, registration): what install() puts on an event system.
_EVENTS = (
    ("before-parameter-build.s3", "on_before_parameter_build"),
    ("before-call", "on_before_call"),
    ("request-created", "on_request_created"),
    ("needs-retry", "on_needs_retry"),
    ("after-call", "on_after_call"),
    ("after-call-error", "on_after_call_error"),
)


class Installation:
    """What one ``install()`` made: use it to look at circuits or to undo the install.

    >>> import boto3, botocore_resilience
    >>> from prometheus_client import CollectorRegistry
    >>> session = boto3.Session(region_name="us-east-1")
    >>> installation = botocore_resilience.install(session, registry=CollectorRegistry())
    >>> installation.settings.failure_threshold
    5
    >>> installation.breakers()   # circuits appear on first use
    {}
    >>> installation.uninstall()
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: Any = None,
        clock: Clock = MONOTONIC,
        jitter: Optional[Callable[[], float]] = None,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.gap_filler = GapFiller(jitter) if jitter is not None else GapFiller()
        self.metrics: MetricsSink = _make_metrics(settings, registry, environ)
        self.circuits: Optional[Circuits] = None
        if settings.breaker != "off":
            self.circuits = _shared_circuits(settings, self.metrics, clock)
        self._bindings: list[_Binding] = []

    def breakers(self) -> dict[str, CircuitBreaker]:
        """``{circuit_name: breaker}`` for every circuit used so far (none with ``breaker=off``)."""
        return self.circuits.breakers() if self.circuits is not None else {}

    def uninstall(self) -> None:
        """Remove this installation from every target it is attached to."""
        with _lock:
            for binding in list(self._bindings):
                if binding.handlers.installation is self:
                    binding.detach()

    def __repr__(self) -> str:
        return f"Installation(name={self.settings.name!r}, circuits={len(self.breakers())})"


class _CircuitObserver:
    """Reports a circuit's transitions to metrics and logs; never raises."""

    def __init__(self, metrics: MetricsSink, recovery_timeout: float) -> None:
        self._metrics = metrics
        self._recovery_timeout = recovery_timeout

    def on_transition(self, transition: Transition) -> None:
        call_safely("metrics", self._metrics.transition, transition)
        call_safely("logging", log_transition, transition, self._recovery_timeout)

    def on_created(self, breaker: CircuitBreaker) -> None:
        call_safely("metrics", self._metrics.circuit_added, breaker.name, breaker.state)

    def on_removed(self, breaker: CircuitBreaker) -> None:
        call_safely("metrics", self._metrics.circuit_removed, breaker.name)


# Installations with the same settings, metrics and clock share their circuits: a service
# that is down is down for the whole process, and an application that installs on every
# session it makes must still trip one circuit, not start a fresh one per session.
_circuits: weakref.WeakValueDictionary[tuple[Any, ...], Circuits] = weakref.WeakValueDictionary()
_circuits_lock = threading.Lock()


def _shared_circuits(settings: Settings, metrics: MetricsSink, clock: Clock) -> Circuits:
    policy = BreakerPolicy(
        failure_threshold=settings.failure_threshold,
        recovery_timeout=settings.recovery_timeout,
        success_threshold=settings.success_threshold,
        half_open_max_calls=settings.half_open_max_calls,
        enforce=settings.breaker == "on",
    )
    key = (settings.name, settings.scope, settings.max_circuits, policy, id(metrics), id(clock))
    with _circuits_lock:
        circuits = _circuits.get(key)
        if circuits is None:
            observer = _CircuitObserver(metrics, settings.recovery_timeout)
            circuits = Circuits(
                scope=settings.scope,
                prefix=settings.name,
                policy=policy,
                clock=clock,
                observer=observer.on_transition,
                on_created=observer.on_created,
                on_removed=observer.on_removed,
                max_circuits=settings.max_circuits,
            )
            # The key holds ids, not objects: keep metrics and clock alive with the circuits.
            circuits.keepalive = (metrics, clock)
            _circuits[key] = circuits
        return circuits


def _make_metrics(settings: Settings, registry: Any, environ: Mapping[str, str]) -> MetricsSink:
    if not (settings.enabled and settings.metrics):  # a disabled install registers nothing
        return NULL_METRICS
    try:
        metrics = metrics_for(registry, settings.metrics_namespace)
    except Exception:
        # A registry that already holds a foreign collector under one of our names: the
        # application keeps running, without our metrics, and says why once.
        logger.warning("botocore_resilience: metrics disabled", exc_info=True)
        return NULL_METRICS
    if settings.metrics_port is not None:
        # Never raises: a port taken by a sibling worker is logged, not fatal.
        start_metrics_server(
            settings.metrics_port, settings.metrics_addr, registry, environ=environ
        )
    return metrics


def register_handlers(events: Any, handlers: EventHandlers) -> None:
    """Register ``handlers`` on an event system; botocore's unique ids make it idempotent."""
    for event, method in _EVENTS:
        events.register(event, getattr(handlers, method), unique_id=f"{_UID}.{event}")


def unregister_handlers(events: Any) -> None:
    for event, _method in _EVENTS:
        events.unregister(event, unique_id=f"{_UID}.{event}")


class _Binding:
    """One target's registered handlers (and, for a session, the retry defaults we set).

    Bindings live in a ``WeakKeyDictionary`` keyed by their target, so nothing here may
    hold the target strongly: the session (or client) is reached through a weak
    reference, and handlers are registered on its event emitter, which does not point
    back at it. An application that installs on a session per request leaks nothing.
    """

    def __init__(self, owner: Any, events: Any, is_session: bool) -> None:
        self.owner_ref = weakref.ref(owner)
        self.events = events
        self.is_session = is_session
        self.handlers = EventHandlers(None)
        self.retry_defaults: Optional[RetryDefaults] = None
        if not is_session:
            # A client may carry handlers copied from a session install: this client's own
            # install replaces them (unique ids would otherwise keep the session's).
            unregister_handlers(events)
        register_handlers(events, self.handlers)

    def attach(self, installation: Installation, environ: Mapping[str, str]) -> None:
        session = self.owner_ref() if self.is_session else None
        if session is not None:
            if self.retry_defaults is not None:
                restore_retry_defaults(session, self.retry_defaults)
            self.retry_defaults = apply_retry_defaults(
                session, installation.settings.retry_mode, installation.settings.max_attempts
            )
        previous = self.handlers.installation
        if previous is not None and self in previous._bindings:
            previous._bindings.remove(self)
        self.handlers.installation = installation
        installation._bindings.append(self)

    def detach(self) -> None:
        unregister_handlers(self.events)
        owner = self.owner_ref()
        if self.is_session and owner is not None and self.retry_defaults is not None:
            restore_retry_defaults(owner, self.retry_defaults)
        self.retry_defaults = None
        installation = self.handlers.installation
        if installation is not None and self in installation._bindings:
            installation._bindings.remove(self)
        self.handlers.installation = None  # clients that copied the handlers go quiet too
        if owner is not None:
            _bindings.pop(owner, None)


_lock = threading.RLock()
_bindings: weakref.WeakKeyDictionary[Any, _Binding] = weakref.WeakKeyDictionary()


def _resolve(target: Any) -> tuple[Any, Any, bool]:
    """``(owner, event emitter, owner is a session)`` for any supported target."""
    import boto3
    import boto3.session
    import botocore.session

    if target is None:
        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        target = boto3.DEFAULT_SESSION
    if isinstance(target, boto3.session.Session):
        target = target._session
    if isinstance(target, botocore.session.Session):
        # The emitter, not the session: registering on it is what session.register does,
        # and it holds no reference back to the session.
        return target, target.get_component("event_emitter"), True
    meta = getattr(target, "meta", None)
    if meta is not None and hasattr(meta, "events"):
        return target, meta.events, False
    raise TypeError(
        "install() takes a boto3 Session, a botocore Session, a botocore client or None, "
        f"not {type(target).__name__}"
    )


def install(
    target: Any = None,
    *,
    registry: Any = None,
    clock: Clock = MONOTONIC,
    environ: Optional[Mapping[str, str]] = None,
    jitter: Optional[Callable[[], float]] = None,
    **options: Any,
) -> Installation:
    """Add retries, circuit breakers and metrics to every call made through ``target``.

    Args:
        target: a ``boto3.session.Session``, a ``botocore.session.Session``, a botocore
            client, or ``None`` for boto3's default session (the one ``boto3.client()``
            uses; created if needed). Install on a session *before* creating clients:
            botocore copies a session's handlers into each client when it is created.
        registry: the ``prometheus_client.CollectorRegistry`` for metrics
            (default: ``prometheus_client.REGISTRY``).
        clock: anything with ``monotonic()``; for tests.
        environ: where ``BOTOCORE_RESILIENCE_*`` (and ``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS``)
            are read from; default ``os.environ``.
        jitter: the random source (``[0, 1)``) of the backoff before retries *we* add
            (botocore's own retries use botocore's); ``lambda: 0.0`` removes the wait in tests.
        **options: the settings of the contract in lower case, e.g. ``failure_threshold=3``.

    Returns:
        The :class:`Installation`.

    Raises:
        ConfigurationError: a setting is invalid; nothing was registered.

    >>> import boto3, botocore_resilience
    >>> from prometheus_client import CollectorRegistry
    >>> session = boto3.Session(region_name="eu-west-1")
    >>> installation = botocore_resilience.install(
    ...     session, registry=CollectorRegistry(), failure_threshold=3, scope="bucket")
    >>> installation.settings.scope
    'bucket'
    >>> botocore_resilience.uninstall(session)
    """
    environ = os.environ if environ is None else environ
    settings = Settings.from_env(environ, **options)  # raises before anything is touched
    for name in unknown_variables(environ):
        logger.warning("botocore_resilience: ignoring unknown setting %s (a typo?)", name)
    owner, events, is_session = _resolve(target)
    installation = Installation(
        settings, registry=registry, clock=clock, jitter=jitter, environ=environ
    )
    with _lock:
        binding = _bindings.get(owner)
        if not settings.enabled:
            if binding is not None:
                binding.detach()
            return installation
        if binding is None:
            binding = _bindings[owner] = _Binding(owner, events, is_session)
        binding.attach(installation, environ)
    return installation


def uninstall(target: Any = None) -> None:
    """Remove what :func:`install` registered on ``target`` (no-op if nothing was).

    Handlers are unregistered, the session's default client config is restored (unless you
    changed it since), and clients that copied the handlers go quiet.

    >>> import boto3, botocore_resilience
    >>> from prometheus_client import CollectorRegistry
    >>> session = boto3.Session(region_name="us-east-1")
    >>> _ = botocore_resilience.install(session, registry=CollectorRegistry())
    >>> botocore_resilience.uninstall(session)
    >>> botocore_resilience.uninstall(session)  # idempotent
    """
    owner, _events, _is_session = _resolve(target)
    with _lock:
        binding = _bindings.get(owner)
        if binding is not None:
            binding.detach()


def installation_of(target: Any = None) -> Optional[Installation]:
    """The active installation on ``target``, if any."""
    owner, _events, _is_session = _resolve(target)
    binding = _bindings.get(owner)
    return binding.handlers.installation if binding is not None else None
