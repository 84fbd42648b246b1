"""Zero-code install through botocore's client plugins (botocore >= 1.39.9).

With ``BOTOCORE_EXPERIMENTAL__PLUGINS="resilience=botocore_resilience.plugin"`` in the
environment, botocore calls :func:`initialize_client_plugin` for every client it
creates. All those clients share one installation built from the environment.

botocore calls plugins *after* it has built the client's retry handler, so this path
cannot choose the retry mode: set ``AWS_RETRY_MODE=standard`` beside it for the mode the
other entry points choose. Circuits, metrics, logging and retry gap-filling all apply.

botocore swallows errors raised by plugins (logging them at DEBUG), so a bad
``BOTOCORE_RESILIENCE_*`` value is logged here at ERROR instead, once, and the
clients run without the plugin.
"""

from __future__ import annotations

from typing import Any, Optional

from . import _fork
from .errors import ConfigurationError
from .handlers import EventHandlers
from .install import _attach_client
from .logs import logger
from .runtime import build_runtime, serve_metrics

__all__ = ["initialize_client_plugin"]

_WHERE = "client plugin"  # what our failures are logged as

_lock = _fork.new_lock()
_handlers: Optional[EventHandlers] = None
_failed = False


def initialize_client_plugin(client: Any) -> None:
    """botocore's plugin entry point: cover ``client``."""
    handlers = _shared_handlers()
    if handlers is not None:
        _attach_client(client, handlers, _WHERE)


def _shared_handlers() -> Optional[EventHandlers]:
    global _handlers, _failed
    with _lock:
        if _handlers is None and not _failed:
            try:
                runtime = build_runtime()  # the process's environment, like any install
            except ConfigurationError as error:
                _failed = True
                logger.error("botocore_resilience plugin not installed: %s", error)
                return None
            if not runtime.settings.enabled:
                _failed = True
                return None
            serve_metrics(runtime)
            _handlers = EventHandlers(runtime)
        return _handlers


def _reset_for_tests() -> None:
    global _handlers, _failed
    with _lock:
        _handlers, _failed = None, False
