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
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from botocore.config import Config

from .classification import botocore_retries, is_retryable_attempt

__all__ = ["GapFiller", "RetryDefaults", "apply_retry_defaults", "restore_retry_defaults"]

_MAX_BACKOFF = 20.0
_BASE = 2.0
_BOTOCORE_DEFAULT_MAX_ATTEMPTS = 3  # botocore.retries.standard.DEFAULT_MAX_ATTEMPTS


@dataclass(frozen=True)
class RetryDefaults:
    """What :func:`apply_retry_defaults` changed on a session, so it can be undone."""

    previous: Optional[Config]
    applied: Mapping[str, Any]


def _user_set(session: Any, logical_name: str, environ: Mapping[str, str]) -> bool:
    env_name = "AWS_" + logical_name.upper()
    if environ.get(env_name):
        return True
    # Instance variables and the profile, without botocore's built-in default.
    try:
        value = session.get_config_variable(logical_name, methods=("instance", "config"))
    except Exception:  # e.g. ProfileNotFound: the client would fail too; don't guess
        return False
    return value is not None


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
    retries: dict[str, Any] = {}
    if "mode" not in existing and not _user_set(session, "retry_mode", environ):
        retries["mode"] = retry_mode
    if (
        "max_attempts" not in existing
        and "total_max_attempts" not in existing
        and not _user_set(session, "max_attempts", environ)
    ):
        retries["total_max_attempts"] = max_attempts
    if retries:
        merged = Config(retries={**existing, **retries})
        session.set_default_client_config(previous.merge(merged) if previous else merged)
    return RetryDefaults(previous=previous, applied=retries)


def restore_retry_defaults(session: Any, defaults: RetryDefaults) -> None:
    if defaults.applied:
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
