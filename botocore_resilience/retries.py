"""Retries: botocore's retry mode and attempts where the user chose none, and the gaps it leaves.

botocore does the retrying. This module only

* gives clients the plugin's ``retry_mode`` and ``max_attempts`` where the user set none.
  They go into botocore's own configuration chain, as one more layer just above botocore's
  built-in default (:func:`apply_retry_defaults`): everything the user sets anywhere
  (a client ``Config``, the session's default ``Config``, ``AWS_RETRY_MODE`` /
  ``AWS_MAX_ATTEMPTS``, the profile, ``session.set_config_variable``) comes first, and no
  ``Config`` object is built, merged or touched, so every other option of the client is
  exactly what botocore makes of the user's settings (docs/explanation/adaptive-mode.md);
* decides, for an attempt that botocore could not classify but the plugin retries (a bare
  429 or 408), whether to retry it, within the client's attempts and with the wait botocore
  itself would compute on the installed version (:class:`GapFiller`).
"""

from __future__ import annotations

import random as _random
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from botocore.configprovider import BaseProvider, ChainProvider, ConstantProvider
from botocore.retries import standard

from . import _fork
from .classification import is_gap

__all__ = [
    "GapFiller",
    "RetryDefaults",
    "RetrySettings",
    "apply_retry_defaults",
    "apply_shared_retry_defaults",
    "restore_retry_defaults",
]


@dataclass(frozen=True)
class RetrySettings:
    """The two settings the plugin fills in: botocore's ``retry_mode`` and ``max_attempts``."""

    retry_mode: str
    max_attempts: int


# -- retry defaults: one layer in botocore's configuration chain ----------------------------


class _Layer:
    """The plugin's retry settings for one session: from ``install(session)`` and/or from
    ``install_global()``. The session's own install wins, as it does for the handlers of a
    client whose session was installed directly (docs/how-to/install-global.md)."""

    def __init__(self) -> None:
        self.installed: Optional[RetrySettings] = None
        self.shared: Optional[Callable[[], Optional[RetrySettings]]] = None

    def current(self) -> Optional[RetrySettings]:
        if self.installed is not None:
            return self.installed
        return self.shared() if self.shared is not None else None


class _LayerProvider(BaseProvider):  # type: ignore[misc]
    """A botocore config provider: the plugin's value of one variable, or ``None`` (next one)."""

    def __init__(self, layer: _Layer, field: str) -> None:
        self.layer = layer
        self._field = field

    def provide(self) -> Any:
        settings = self.layer.current()
        return getattr(settings, self._field) if settings is not None else None

    def __deepcopy__(self, memo: Any) -> _LayerProvider:
        # botocore deep-copies a chain when defaults_mode rewrites its default; the layer is
        # shared state (uninstall must reach clients' copies), like InstanceVarProvider's session.
        return self

    def __repr__(self) -> str:
        return f"botocore_resilience({self._field})"


_VARIABLES = ("retry_mode", "max_attempts")  # botocore's names, and RetrySettings' fields
_lock = _fork.new_lock()
_layers: weakref.WeakKeyDictionary[Any, _Layer] = weakref.WeakKeyDictionary()


def _with_layer(chain: Any, provider: _LayerProvider) -> Any:
    """``chain`` with ``provider`` just above its built-in default (its trailing constant), so
    that whatever the user sets wins, and so does ours over botocore's default, including the
    one ``defaults_mode`` writes there when a client is created."""
    if isinstance(chain, ChainProvider):
        providers = list(chain._providers)
        at = len(providers)
        if providers and isinstance(providers[-1], ConstantProvider):
            at -= 1
        providers.insert(at, provider)
        return ChainProvider(providers=providers, conversion_func=chain._conversion_func)
    if chain is None:
        return ChainProvider(providers=[provider])
    return ChainProvider(providers=[chain, provider])  # someone's own provider first


def _has_layer(chain: Any, layer: _Layer) -> bool:
    providers = getattr(chain, "_providers", ())
    return any(isinstance(p, _LayerProvider) and p.layer is layer for p in providers)


def _layer_of(session: Any) -> _Layer:
    """The session's layer, put into its config store if it is not there (call under _lock)."""
    layer = _layers.get(session)
    if layer is None:
        layer = _layers[session] = _Layer()
    store = session.get_component("config_store")
    for variable in _VARIABLES:
        chain = store.get_config_provider(variable)
        if not _has_layer(chain, layer):  # new, or the user replaced the chain since
            store.set_config_provider(variable, _with_layer(chain, _LayerProvider(layer, variable)))
    return layer


@dataclass(frozen=True)
class RetryDefaults:
    """What :func:`apply_retry_defaults` did to a session, so that it can be undone."""

    settings: RetrySettings


def apply_retry_defaults(session: Any, retry_mode: str, max_attempts: int) -> RetryDefaults:
    """Give clients created from ``session`` (a ``botocore.session.Session``) our retry mode
    and attempts, each where the user set none.

    >>> import botocore.session
    >>> session = botocore.session.Session()
    >>> defaults = apply_retry_defaults(session, "adaptive", 4)
    >>> session.get_config_variable("retry_mode"), session.get_config_variable("max_attempts")
    ('adaptive', 4)
    >>> restore_retry_defaults(session, defaults)
    >>> session.get_config_variable("max_attempts") is None
    True
    """
    settings = RetrySettings(retry_mode, max_attempts)
    with _lock:
        _layer_of(session).installed = settings
    return RetryDefaults(settings)


def restore_retry_defaults(session: Any, defaults: RetryDefaults) -> None:
    """Undo :func:`apply_retry_defaults`: new clients get botocore's defaults again (or
    ``install_global()``'s, where that covers the session)."""
    with _lock:
        layer = _layers.get(session)
        if layer is not None and layer.installed == defaults.settings:
            layer.installed = None


def apply_shared_retry_defaults(
    session: Any, current: Callable[[], Optional[RetrySettings]]
) -> None:
    """Give clients created from ``session`` the retry settings ``current()`` returns at the
    time each client is created (``None``: botocore's own), for ``install_global()``:
    reinstalling or uninstalling it changes what ``current`` returns, nothing else."""
    with _lock:
        layer = _layers.get(session)
        if layer is not None and layer.shared is current:
            store = session.get_component("config_store")
            if all(_has_layer(store.get_config_provider(v), layer) for v in _VARIABLES):
                return  # the common case: this session was seen before
        _layer_of(session).shared = current


# -- gap filling ----------------------------------------------------------------------------


def _botocore_default_attempts(service: str) -> int:
    """Total attempts botocore gives a standard/adaptive client whose attempts nobody set."""
    from botocore import configprovider

    if getattr(configprovider, "NEW_RETRIES_ENABLED", False):  # the 2026 retry behaviour
        per_service: Mapping[str, int] = getattr(standard, "_SERVICE_MAX_ATTEMPTS", {})
        return int(per_service.get(service, standard.DEFAULT_MAX_ATTEMPTS))
    return int(standard.DEFAULT_MAX_ATTEMPTS)


def max_attempts_of(retries: Mapping[str, Any], service: str) -> int:
    """Total attempts botocore makes for a client whose resolved ``retries`` config is given."""
    total = retries.get("total_max_attempts")
    if total is None and retries.get("max_attempts") is not None:
        total = retries["max_attempts"] + 1  # Config(retries={"max_attempts": n}) counts retries
    return int(total) if total is not None else _botocore_default_attempts(service)


def _botocore_backoff(service: str, random: Callable[[], float]) -> Any:
    """The backoff botocore's standard/adaptive retry handler uses for ``service``, with our
    ``random``: botocore computes the wait, on whatever version is installed."""
    try:  # botocore >= 1.43: per-service base, throttling scale, x-amz-retry-after
        return standard.ExponentialBackoff(
            random=random,
            service_name=service,
            throttling_detector=standard.ThrottlingErrorDetector(standard.RetryEventAdapter()),
        )
    except TypeError:  # older botocore: one formula for every service
        return standard.ExponentialBackoff(random=random)


class GapFiller:
    """Decides retries for attempts that botocore's standard and adaptive modes leave out.

    ``random`` is injected so tests can fix the jitter (``lambda: 0.0`` waits nothing, except
    what an ``x-amz-retry-after`` header asks for where botocore honours it).
    """

    def __init__(self, random: Callable[[], float] = _random.random) -> None:
        self._random = random
        self._backoffs: dict[str, Any] = {}

    def delay(self, context: Any) -> Optional[float]:
        """Seconds to wait before retrying the attempt, or ``None`` to leave it to botocore.

        ``context`` is botocore's ``RetryContext`` of the attempt, the one value every
        question here reads.
        """
        retries = getattr(context.request_context.get("client_config"), "retries", None) or {}
        if retries.get("mode") not in ("standard", "adaptive"):
            return None  # legacy has its own table, which the user chose: left as it is
        if context.operation_model is None:
            return None  # not a call botocore made (it always names the operation)
        service = context.operation_model.service_model.service_id.hyphenize()
        if context.attempt_number >= max_attempts_of(retries, service):
            return None
        if not is_gap(context):
            return None
        backoff = self._backoffs.get(service)
        if backoff is None:
            backoff = self._backoffs[service] = _botocore_backoff(service, self._random)
        return float(backoff.delay_amount(context))
