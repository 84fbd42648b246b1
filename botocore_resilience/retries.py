"""Retries: choose botocore's retry mode where the user chose none, and fill its gaps.

botocore does the retrying. This module only

* puts a session's clients on ``adaptive`` mode with ``max_attempts`` total attempts,
  for each of the two that the user has not set anywhere (client ``Config``, the
  session's default client config, ``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS``, the profile's
  ``retry_mode``/``max_attempts``, session instance variables);
* decides, for an attempt botocore's standard/adaptive conditions would *not* retry
  but the contract does (a bare 429 ``TooManyRequests``, a 408 ``ClientTimeout``),
  whether to retry it and after how long — with botocore's own backoff shape
  (truncated binary exponential, full jitter, 20 s cap) and within the same
  ``max_attempts``. Where botocore already decides, we say nothing.

Legacy mode is the user's explicit choice of a different retry table; we leave it
whole.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional

from botocore.config import Config

from .classification import botocore_retries, is_retryable_attempt

__all__ = [
    "GapFiller",
    "RetryDefaults",
    "apply_retry_defaults",
    "client_config_with_defaults",
    "missing_retry_settings",
    "restore_retry_defaults",
]

_MAX_BACKOFF = 20.0
_BASE = 2.0
_BOTOCORE_DEFAULT_MAX_ATTEMPTS = 3  # botocore.retries.standard.DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class RetryDefaults:
    """What :func:`apply_retry_defaults` changed on a session, so it can be undone."""

    previous: Optional[Config]
    applied: Mapping[str, Any]
    installed: Optional[Config] = None
    """The default client config we set; restored from only if it is still the one in place."""


def _user_set(session: Any, logical_name: str, environ: Mapping[str, str]) -> bool:
    """Whether the user set ``retry_mode``/``max_attempts`` in any place botocore reads it
    from (besides a client ``Config``): environment, session instance variable, profile."""
    if environ.get("AWS_" + logical_name.upper()):
        return True
    if session.instance_variables().get(logical_name) is not None:
        return True
    try:
        return session.get_scoped_config().get(logical_name) is not None
    except Exception:  # e.g. ProfileNotFound: client creation will say so; don't guess
        return False


def missing_retry_settings(
    session: Any,
    existing: Mapping[str, Any],
    retry_mode: str,
    max_attempts: int,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """The ``retries`` entries to add for ``session``, given the ``existing`` retries config:
    ``mode`` and/or ``total_max_attempts``, each only if the user set it nowhere."""
    retries: dict[str, Any] = {}
    if "mode" not in existing and not _user_set(session, "retry_mode", environ):
        retries["mode"] = retry_mode
    if (
        "max_attempts" not in existing
        and "total_max_attempts" not in existing
        and not _user_set(session, "max_attempts", environ)
    ):
        retries["total_max_attempts"] = max_attempts
    return retries


def apply_retry_defaults(
    session: Any, retry_mode: str, max_attempts: int, environ: Mapping[str, str]
) -> RetryDefaults:
    """Merge our retry defaults into ``session``'s default client config where the user set none.

    ``session`` is a ``botocore.session.Session``. A client ``Config`` passed to
    ``create_client`` that sets ``retries`` replaces this default whole (botocore's merge
    rule): that is the user choosing their own retry settings.
    """
    previous = session.get_default_client_config()
    existing = dict(getattr(previous, "retries", None) or {})
    retries = missing_retry_settings(session, existing, retry_mode, max_attempts, environ)
    if not retries:
        return RetryDefaults(previous=previous, applied=retries)
    merged = Config(retries={**existing, **retries})
    installed = previous.merge(merged) if previous else merged
    session.set_default_client_config(installed)
    return RetryDefaults(previous=previous, applied=retries, installed=installed)


def client_config_with_defaults(
    session: Any,
    config: Optional[Config],
    retry_mode: str,
    max_attempts: int,
    environ: Mapping[str, str],
) -> Optional[Config]:
    """The ``config`` to pass to ``session.create_client`` so that the client gets our retry
    defaults where the user set none (used where we see client creation, not the session).

    Here each key is judged on its own: a client ``Config(retries={"max_attempts": 2})``
    keeps its attempts and still gets our mode.
    """
    if config is not None and config.retries is not None:
        existing = dict(config.retries)
    else:
        default = session.get_default_client_config()
        existing = dict(getattr(default, "retries", None) or {})
    retries = missing_retry_settings(session, existing, retry_mode, max_attempts, environ)
    if not retries:
        return config
    ours = Config(retries={**existing, **retries})
    return config.merge(ours) if config is not None else ours


def restore_retry_defaults(session: Any, defaults: RetryDefaults) -> None:
    """Undo :func:`apply_retry_defaults`, unless the user has set another default config
    since: theirs wins."""
    if defaults.applied and session.get_default_client_config() is defaults.installed:
        session.set_default_client_config(defaults.previous)


def max_attempts_of(client_config: Any) -> int:
    """Total attempts botocore will make for a client (its config, else botocore's default)."""
    retries = getattr(client_config, "retries", None) or {}
    total = retries.get("total_max_attempts")
    if total is None and retries.get("max_attempts") is not None:
        total = retries["max_attempts"] + 1  # Config(retries={"max_attempts": n}) counts retries
    return int(total) if total is not None else _BOTOCORE_DEFAULT_MAX_ATTEMPTS


class GapFiller:
    """Decides retries for attempts that botocore's v2 retry conditions leave out.

    ``random`` is injected so tests can make every backoff 0 (or any fixed fraction).
    """

    def __init__(self, random: Callable[[], float] = random.random) -> None:
        self._random = random

    def delay(
        self,
        *,
        attempt: int,
        max_attempts: int,
        status: Optional[int],
        code: Optional[str],
        exception: Optional[BaseException],
        retry_context: Callable[[], Any],
    ) -> Optional[float]:
        """Seconds to wait before retrying, or ``None`` to leave the decision to botocore.

        ``retry_context`` builds botocore's ``RetryContext`` for this attempt; it is only
        called for attempts that failed, so successful attempts cost nothing.
        """
        if attempt >= max_attempts:
            return None
        if not is_retryable_attempt(status, code, exception):
            return None
        if botocore_retries(retry_context()):
            return None  # botocore has decided (retry, or not for quota reasons): its call
        return self._random() * min(_BASE ** (attempt - 1), _MAX_BACKOFF)
