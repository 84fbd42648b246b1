"""Which circuit a call belongs to, and the breakers behind the names (contract §3).

==========  =====================================  =========================
scope       circuit name                           example
==========  =====================================  =========================
service     ``{service}/{region}``                 ``s3/us-east-1``
operation   ``{service}/{region}/{Operation}``     ``s3/us-east-1/GetObject``
bucket      ``{service}/{region}/{bucket}``        ``s3/us-east-1/invoices``
==========  =====================================  =========================

``bucket`` scope falls back to the service circuit for calls that name no bucket. A
non-empty ``name`` setting prefixes every circuit: ``storage/s3/us-east-1``.

Lookups sit on every call's path, so breakers are cached by a tuple of the parts
(no string formatting after the first call), and the lock is taken only to create.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

from .breaker import BreakerPolicy, CircuitBreaker, Observer
from .clock import Clock

__all__ = ["Circuits"]

_GLOBAL = "global"  # region of clients that have none


class Circuits:
    """The breakers of one installation, created on first use."""

    def __init__(
        self,
        *,
        scope: str,
        prefix: str,
        policy: BreakerPolicy,
        clock: Clock,
        observer: Optional[Observer] = None,
        on_created: Optional[Callable[[CircuitBreaker], None]] = None,
    ) -> None:
        if scope not in ("service", "operation", "bucket"):
            raise ValueError(f"unknown scope {scope!r}")
        self._scope = scope
        self._prefix = f"{prefix}/" if prefix else ""
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._on_created = on_created
        self._by_key: dict[tuple[str, str, str], CircuitBreaker] = {}
        self.keepalive: object = None  # whatever the owner needs kept alive with these circuits
        self._lock = threading.Lock()

    def key(
        self, service: str, region: Optional[str], operation: str, bucket: str
    ) -> tuple[str, str, str]:
        """The cache key of the circuit a call belongs to (cheap: no formatting)."""
        if self._scope == "operation":
            return (service, region or _GLOBAL, operation)
        if self._scope == "bucket" and bucket:
            return (service, region or _GLOBAL, bucket)
        return (service, region or _GLOBAL, "")

    def breaker_for(
        self, service: str, region: Optional[str], operation: str, bucket: str
    ) -> CircuitBreaker:
        key = self.key(service, region, operation, bucket)
        breaker = self._by_key.get(key)
        if breaker is not None:
            return breaker
        return self._create(key)

    def _create(self, key: tuple[str, str, str]) -> CircuitBreaker:
        with self._lock:
            breaker = self._by_key.get(key)
            if breaker is not None:  # another thread created it while we waited
                return breaker
            service, region, detail = key
            name = f"{self._prefix}{service}/{region}" + (f"/{detail}" if detail else "")
            breaker = CircuitBreaker(name, self._policy, self._clock, self._observer)
            self._by_key[key] = breaker
        if self._on_created is not None:
            self._on_created(breaker)
        return breaker

    def breakers(self) -> dict[str, CircuitBreaker]:
        """A snapshot ``{circuit_name: breaker}``."""
        with self._lock:
            return {breaker.name: breaker for breaker in self._by_key.values()}

    def __len__(self) -> int:
        return len(self._by_key)
