"""``install()`` and ``uninstall()``: targets, their bindings, and the :class:`Installation` handle.

An installation's :class:`~botocore_resilience.runtime.Runtime` (settings, clock,
circuits, observers, retry gap filler) is built by
:func:`~botocore_resilience.runtime.build_runtime`, the factory every entry point
shares. This module *attaches* a runtime to one target's event system (a botocore
session, or one client) through an :class:`EventHandlers` object whose bound methods
are registered with botocore ``unique_id``\\ s, so registering twice is impossible. A
second ``install()`` on the same target swaps the runtime behind the same handlers
(its options replace the earlier ones, also for clients already created from that
session); ``uninstall()`` unregisters them and switches them off, so clients that
copied them become plain botocore again.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, Callable, Optional

from . import _fork
from .breaker import CircuitBreaker, Transition
from .circuits import Circuits
from .clock import Clock
from .config import Settings
from .handlers import EventHandlers
from .logs import log_internal_error
from .retries import RetryDefaults, apply_retry_defaults, restore_retry_defaults
from .runtime import Runtime, build_runtime, serve_metrics

__all__ = ["Installation", "install", "uninstall"]

_UID = "botocore_resilience"

# (event, handler method name): what every entry point puts on an event system.
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

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._bindings: list[_Binding] = []

    @property
    def settings(self) -> Settings:
        """The effective :class:`~botocore_resilience.Settings` of this installation."""
        return self.runtime.settings

    @property
    def circuits(self) -> Optional[Circuits]:
        """The circuit registry (``None`` with ``breaker=off``); see :meth:`breakers`."""
        return self.runtime.circuits

    def breakers(self) -> dict[str, CircuitBreaker]:
        """``{circuit_name: breaker}`` for every circuit used so far (none with ``breaker=off``)."""
        circuits = self.runtime.circuits
        return circuits.breakers() if circuits is not None else {}

    def uninstall(self) -> None:
        """Remove this installation from every target it is attached to."""
        with _lock:
            for binding in list(self._bindings):
                if binding.installation is self:
                    binding.detach()

    def __repr__(self) -> str:
        return f"Installation(name={self.settings.name!r}, circuits={len(self.breakers())})"


def _register_handlers(events: Any, handlers: EventHandlers) -> None:
    """Register ``handlers`` on an event system; botocore's unique ids make it idempotent."""
    for event, method in _EVENTS:
        events.register(event, getattr(handlers, method), unique_id=f"{_UID}.{event}")


def _unregister_handlers(events: Any) -> None:
    for event, _method in _EVENTS:
        events.unregister(event, unique_id=f"{_UID}.{event}")


def _attach_client(client: Any, handlers: EventHandlers, where: str) -> None:
    """Register ``handlers`` on a client just created (``install_global()``, the plugin).

    Never raises: a client we cannot cover still works, plain; the failure is logged
    under ``where``.
    """
    try:
        _register_handlers(client.meta.events, handlers)
    except Exception:
        log_internal_error(where)


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
            _unregister_handlers(events)
        _register_handlers(events, self.handlers)
        self.installation: Optional[Installation] = None

    def attach(self, installation: Installation) -> None:
        runtime = installation.runtime
        session = self.owner_ref() if self.is_session else None
        if session is not None:
            if self.retry_defaults is not None:
                restore_retry_defaults(session, self.retry_defaults)
            self.retry_defaults = apply_retry_defaults(
                session, runtime.settings.retry_mode, runtime.settings.max_attempts
            )
        previous = self.installation
        if previous is not None and self in previous._bindings:
            previous._bindings.remove(self)
        self.installation = installation
        self.handlers.runtime = runtime
        installation._bindings.append(self)

    def detach(self) -> None:
        _unregister_handlers(self.events)
        owner = self.owner_ref()
        if self.is_session and owner is not None and self.retry_defaults is not None:
            restore_retry_defaults(owner, self.retry_defaults)
        self.retry_defaults = None
        installation = self.installation
        if installation is not None and self in installation._bindings:
            installation._bindings.remove(self)
        self.installation = None
        self.handlers.runtime = None  # clients that copied the handlers go quiet too
        if owner is not None:
            _bindings.pop(owner, None)


_lock = _fork.new_rlock()
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
    clock: Optional[Clock] = None,
    environ: Optional[Mapping[str, str]] = None,
    jitter: Optional[Callable[[], float]] = None,
    meter_provider: Any = None,
    on_transition: Optional[Callable[[Transition], None]] = None,
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
        clock: anything with ``monotonic()`` (a :class:`~botocore_resilience.Clock`); for
            tests. Default: :func:`time.monotonic`.
        environ: where ``BOTOCORE_RESILIENCE_*`` are read from; default ``os.environ``.
            (``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS`` are botocore's: it reads them itself.)
        jitter: the random source (``[0, 1)``) of the backoff before retries *we* add
            (botocore's own retries use botocore's) and of the open periods' extra (up to
            10%); ``lambda: 0.0`` removes both in tests.
        meter_provider: the OpenTelemetry ``MeterProvider`` that records the metrics with
            ``metrics="otel"`` (default: the global one, which may be set later).
        on_transition: called as ``on_transition(transition)`` with a
            :class:`~botocore_resilience.Transition` on every state change of this
            installation's circuits, after the metrics and logs, outside every lock; an
            exception it raises is logged (WARNING) and ignored. An installation with a
            callback has circuits of its own (they report to the installation that made them).
        **options: the settings (``docs/reference/settings.md``) by their lower-case option
            names, e.g. ``failure_threshold=3``.

    Returns:
        The :class:`Installation`.

    Raises:
        ConfigurationError: a setting is invalid; nothing was registered.

    Unknown ``BOTOCORE_RESILIENCE_*`` variables in ``environ`` (likely typos) are logged
    as warnings. With ``metrics_port`` set, this is also when ``/metrics`` starts serving.

    >>> import boto3, botocore_resilience
    >>> from prometheus_client import CollectorRegistry
    >>> session = boto3.Session(region_name="eu-west-1")
    >>> installation = botocore_resilience.install(
    ...     session, registry=CollectorRegistry(), failure_threshold=3, scope="bucket")
    >>> installation.settings.scope
    'bucket'
    >>> botocore_resilience.uninstall(session)
    """
    # Settings first: a bad one raises before anything is touched.
    runtime = build_runtime(
        environ,
        registry=registry,
        clock=clock,
        jitter=jitter,
        meter_provider=meter_provider,
        on_transition=on_transition,
        **options,
    )
    owner, events, is_session = _resolve(target)
    installation = Installation(runtime)
    with _lock:
        binding = _bindings.get(owner)
        if not runtime.settings.enabled:
            if binding is not None:
                binding.detach()
            return installation
        if binding is None:
            binding = _bindings[owner] = _Binding(owner, events, is_session)
        binding.attach(installation)
    serve_metrics(runtime, registry)
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


def _installation_of(target: Any = None) -> Optional[Installation]:
    """The active installation on ``target``, if any (for tests and benchmarks)."""
    owner, _events, _is_session = _resolve(target)
    binding = _bindings.get(owner)
    return binding.installation if binding is not None else None
