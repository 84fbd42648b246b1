"""How long a half-open probe keeps its slot when nobody hears how its call ended.

A probe keeps its slot for as long as its call is alive: its outcome frees it, and so does
the end of the call's request context (see ``handlers``). The lease is only the last
resort, for a call whose end is never observed (a thread hung on a socket without a
timeout, a traceback kept forever). It is sized from what the call may legitimately take,
read from the client's configuration::

    attempts x (connect_timeout + read_timeout + 25 s)

25 s is the longest botocore waits before a retry (its 20 s backoff cap, plus up to 5 s
more for a service's retry-after header), with room for adaptive mode's rate limiter.
With botocore's default timeouts (60 s each) and the plugin's default 4 attempts that is
580 s. A timeout set to ``None`` (no timeout) counts as botocore's default, 60 s: a
circuit must never wait forever for a call nobody will see end.
"""

from __future__ import annotations

from typing import Any

__all__ = ["probe_lease"]

_DEFAULT_TIMEOUT = 60.0  # botocore's connect_timeout and read_timeout
_WAIT_PER_ATTEMPT = 25.0
_DEFAULT_ATTEMPTS = 4  # the plugin's max_attempts default, for a config that names none


def probe_lease(client_config: Any) -> float:
    """Seconds a probe made with ``client_config`` (a botocore ``Config``) may legitimately
    take, at most; :data:`_DEFAULT_TIMEOUT`-based for anything it does not say.

    >>> from botocore.config import Config
    >>> probe_lease(Config(connect_timeout=5, read_timeout=10, retries={"total_max_attempts": 3}))
    120.0
    >>> probe_lease(None)
    580.0
    """
    connect = _seconds(getattr(client_config, "connect_timeout", None))
    read = _seconds(getattr(client_config, "read_timeout", None))
    return _attempts(client_config) * (connect + read + _WAIT_PER_ATTEMPT)


def _seconds(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e9:
        return float(value)
    return _DEFAULT_TIMEOUT


def _attempts(client_config: Any) -> int:
    # botocore resolves the client's retry settings into its config when it makes the client.
    retries = getattr(client_config, "retries", None) or {}
    total = retries.get("total_max_attempts")
    if total is None and retries.get("max_attempts") is not None:
        total = retries["max_attempts"] + 1  # Config(retries={"max_attempts": n}) counts retries
    if isinstance(total, int) and 1 <= total <= 1000:
        return total
    return _DEFAULT_ATTEMPTS
