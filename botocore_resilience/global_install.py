"""Process-wide installs: ``install_global()`` and botocore's client-plugin hook.

``install_global()`` wraps ``botocore.session.Session.create_client`` with ``wrapt`` so
that every client created afterwards, from any session (including the ones other
libraries create internally), is born with our handlers and, where its user chose
none, our retry defaults. All such clients share one :class:`Installation`, so a
service's circuit is one circuit process-wide.

A client whose session was ``install()``-ed directly keeps that installation: the
handlers it copied from its session carry the same botocore unique ids, and botocore
keeps the first registration.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Optional

import wrapt

from .config import Settings
from .handlers import EventHandlers
from .install import Installation, register_handlers
from .logs import log_internal_error
from .retries import RetrySettings, apply_shared_retry_defaults

__all__ = ["install_global", "uninstall_global"]


_lock = threading.Lock()
_handlers = EventHandlers(None)  # shared by every client the wrapper sees
_original: Optional[Any] = None


def install_global(**options: Any) -> Installation:
    """Cover every botocore client created from now on in this process, from any session.

    Takes the same keyword options as :func:`botocore_resilience.install` (settings,
    ``registry``, ``clock``, ``environ``, ``jitter``). Idempotent: calling it again
    replaces the options, for clients already created too.

    >>> import botocore_resilience
    >>> from prometheus_client import CollectorRegistry
    >>> installation = botocore_resilience.install_global(registry=CollectorRegistry())
    >>> botocore_resilience.uninstall_global()
    """
    global _original
    import botocore.session

    environ = options.pop("environ", None)
    environ = os.environ if environ is None else environ
    registry = options.pop("registry", None)
    clock = options.pop("clock", None)
    jitter = options.pop("jitter", None)
    settings = Settings.from_env(environ, **options)
    kwargs: dict[str, Any] = {"registry": registry, "jitter": jitter, "environ": environ}
    if clock is not None:
        kwargs["clock"] = clock
    installation = Installation(settings, **kwargs)
    with _lock:
        _handlers.installation = installation if settings.enabled else None
        _environs[0] = environ
        if settings.enabled and _original is None:
            _original = botocore.session.Session.create_client
            botocore.session.Session.create_client = wrapt.FunctionWrapper(  # type: ignore[method-assign]
                _original, _create_client
            )
    return installation


def uninstall_global() -> None:
    """Undo :func:`install_global`: new clients are plain again; existing ones go quiet.

    Idempotent, and safe to call when nothing was installed:

    >>> import botocore_resilience
    >>> botocore_resilience.uninstall_global()
    """
    global _original
    import botocore.session

    with _lock:
        _handlers.installation = None
        if _original is None:
            return
        current = botocore.session.Session.__dict__.get("create_client")
        if isinstance(current, wrapt.FunctionWrapper) and current.__wrapped__ is _original:
            botocore.session.Session.create_client = _original  # type: ignore[method-assign]
            _original = None
        # else: someone wrapped create_client after us; unwrapping would remove their
        # wrapper too, so ours stays in place as a pass-through.


_environs: list[Any] = [os.environ]


def _create_client(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    installation = _handlers.installation
    if installation is None or instance is None:
        return wrapped(*args, **kwargs)
    try:
        apply_shared_retry_defaults(instance, _retry_settings)
    except Exception:
        log_internal_error("install_global")
    client = wrapped(*args, **kwargs)
    attach_client(client, _handlers)
    return client


def _retry_settings() -> Optional[RetrySettings]:
    """The retry mode and attempts a client created now gets where its user set none."""
    installation = _handlers.installation
    if installation is None:
        return None
    return RetrySettings(installation.settings.retry_mode, installation.settings.max_attempts)


def attach_client(client: Any, handlers: EventHandlers) -> None:
    try:
        register_handlers(client.meta.events, handlers)
    except Exception:
        log_internal_error("install_global")
