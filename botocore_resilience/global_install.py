"""Process-wide installs: ``install_global()`` and botocore's client-plugin hook.

``install_global()`` wraps ``botocore.session.Session.create_client`` with ``wrapt`` so
that every client created afterwards, from any session (including the ones other
libraries create internally), is born with our handlers and, where its user chose
none, our retry defaults. All such clients share one :class:`Installation`, so a
service's circuit is one circuit process-wide. With aiobotocore installed it also wraps
``AioSession._create_client``, where aiobotocore makes its clients (see ``aio.py``).

A client whose session was ``install()``-ed directly keeps that installation: the
handlers it copied from its session carry the same botocore unique ids, and botocore
keeps the first registration.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import wrapt

from . import _fork, aio
from .handlers import EventHandlers
from .install import Installation, _attach_client
from .logs import log_internal_error
from .retries import RetrySettings, apply_shared_retry_defaults
from .runtime import build_runtime, serve_metrics

__all__ = ["install_global", "uninstall_global"]

_WHERE = "install_global"  # what our failures are logged as

_lock = _fork.new_lock()
_handlers = EventHandlers(None)  # shared by every client a wrapper sees


class _Wrap:
    """One client-creation function that :func:`install_global` wraps, and how.

    botocore's ``Session.create_client`` is the one today; another library's client
    creation (aiobotocore's, say) is one more entry in :data:`_WRAPS`, with a wrapper
    that ends in :func:`_cover` like :func:`_create_client` does.
    """

    def __init__(
        self,
        owner: Callable[[], Optional[type]],
        attribute: str,
        wrapper: Callable[[Any, Any, Any, Any], Any],
    ) -> None:
        self._owner = owner  # imports lazily; None when that library is not installed
        self._attribute = attribute
        self._wrapper = wrapper
        self._original: Optional[Any] = None

    def apply(self) -> None:
        owner = self._owner()
        if owner is None or self._original is not None:
            return
        self._original = owner.__dict__[self._attribute]
        setattr(owner, self._attribute, wrapt.FunctionWrapper(self._original, self._wrapper))

    def remove(self) -> None:
        if self._original is None:
            return
        owner = self._owner()
        current = owner.__dict__.get(self._attribute) if owner is not None else None
        if isinstance(current, wrapt.FunctionWrapper) and current.__wrapped__ is self._original:
            setattr(owner, self._attribute, self._original)
            self._original = None
        # else: someone wrapped it after us; unwrapping would remove their wrapper too,
        # so ours stays in place as a pass-through (the handlers are off).


def install_global(**options: Any) -> Installation:
    """Cover every botocore client created from now on in this process, from any session.

    Takes the same keyword options as :func:`botocore_resilience.install` (settings,
    ``registry``, ``clock``, ``environ``, ``jitter``, ``meter_provider``). Idempotent:
    calling it again replaces the options, for clients already created too.

    >>> import botocore_resilience
    >>> from prometheus_client import CollectorRegistry
    >>> installation = botocore_resilience.install_global(registry=CollectorRegistry())
    >>> botocore_resilience.uninstall_global()
    """
    environ = options.pop("environ", None)
    registry = options.pop("registry", None)
    runtime = build_runtime(environ, registry=registry, **options)
    with _lock:
        _handlers.runtime = runtime if runtime.settings.enabled else None
        if runtime.settings.enabled:
            for wrap in _WRAPS:
                wrap.apply()
    if runtime.settings.enabled:
        serve_metrics(runtime, registry)
    return Installation(runtime)


def uninstall_global() -> None:
    """Undo :func:`install_global`: new clients are plain again; existing ones go quiet.

    Idempotent, and safe to call when nothing was installed:

    >>> import botocore_resilience
    >>> botocore_resilience.uninstall_global()
    """
    with _lock:
        _handlers.runtime = None
        for wrap in _WRAPS:
            wrap.remove()


def _create_client(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    runtime = _handlers.runtime
    if runtime is None or instance is None:
        return wrapped(*args, **kwargs)
    try:
        apply_shared_retry_defaults(instance, _retry_settings)
    except Exception:
        log_internal_error(_WHERE)
    return _cover(wrapped(*args, **kwargs))


def _retry_settings() -> Optional[RetrySettings]:
    """The retry mode and attempts a client created now gets where its user set none."""
    runtime = _handlers.runtime
    if runtime is None:
        return None
    return RetrySettings(runtime.settings.retry_mode, runtime.settings.max_attempts)


def _cover(client: Any) -> Any:
    """Register the shared handlers on a client just created; returns the client."""
    _attach_client(client, _handlers, _WHERE)
    return client


def _botocore_session() -> type:
    import botocore.session

    session_class: type = botocore.session.Session
    return session_class


# -- aiobotocore: its clients are made by a coroutine of its own (botocore_resilience/aio.py) --


def _prepare(session: Any) -> bool:
    """Give a client about to be created from ``session`` our retry defaults; ``False`` when
    ``install_global()`` is off (the client is then left alone)."""
    if _handlers.runtime is None:
        return False
    apply_shared_retry_defaults(session, _retry_settings)
    return True


_WRAPS: list[_Wrap] = [
    _Wrap(_botocore_session, "create_client", _create_client),
    _Wrap(
        aio.session_class, "_create_client", aio.client_creation_wrapper(_prepare, _cover, _WHERE)
    ),
]
"""Every client-creation function ``install_global()`` wraps."""
