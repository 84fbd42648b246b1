"""Which circuit a call belongs to, and the breakers behind the names.

The names are documented for users in ``docs/reference/settings.md`` (circuit names).

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

Bounded: at most ``max_circuits`` circuits, so a workload over ever new buckets cannot
grow memory (or the per-circuit metric series) without limit. When a new circuit would
exceed the bound, the least recently used *closed* circuit with no failures is evicted
(``on_removed`` is told, and drops its metric series). Circuits that are open,
half-open or counting failures are never evicted: forgetting them would forget an
outage. If nothing can be evicted, the call uses its service circuit
(``{service}/{region}``) instead of growing the registry. Service circuits are never
evicted and are always created, even past the bound: there is at most one per service
and region, and they are what everything else falls back to.

Recency is tracked the way operating systems track it for pages (the CLOCK
algorithm): a hit only sets a flag on the entry, without a lock; eviction sweeps the
entries in a ring, clearing flags, and takes the first evictable entry whose flag was
already clear, so anything used since the sweep last passed gets another round.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Optional

from . import _fork
from .breaker import BreakerPolicy, CircuitBreaker, CircuitState, Observer, Transition
from .clock import Clock
from .config import Settings

__all__ = ["DEFAULT_MAX_CIRCUITS", "Circuits", "is_registered"]

_GLOBAL = "global"  # region of clients that have none

DEFAULT_MAX_CIRCUITS = Settings.max_circuits  # the setting's default, written once in config

# After a sweep found nothing to evict (every circuit is open, probing, failing or
# service-wide), new circuits fall back to their service circuit without sweeping again
# for this long: a registry full of open circuits must not cost a full sweep per call.
_RESWEEP_AFTER = 1.0

# Makes the breaker of a new circuit: CircuitBreaker itself, or a CircuitBreaker whose state
# lives in a store shared by a fleet (its backend=, see botocore_resilience.store.backend).
BreakerFactory = Callable[[str, BreakerPolicy, Clock, Observer], Any]

Key = tuple[str, str, str]  # (service, region, operation or bucket or "")

# breaker -> the Circuits that holds it, while it does (weak both ways: neither is kept
# alive by this). Lets the metrics tell a circuit that still judges calls from one left
# over by an installation that is gone.
_holders: weakref.WeakKeyDictionary[CircuitBreaker, weakref.ref[Circuits]] = (
    weakref.WeakKeyDictionary()
)


def is_registered(breaker: object) -> bool:
    """Whether ``breaker`` is still held by a live :class:`Circuits` (not evicted, and
    its installation's circuits not garbage collected)."""
    try:
        holder = _holders.get(breaker)  # type: ignore[call-overload]
    except TypeError:  # not weakly referenceable: not one of ours
        return False
    return holder is not None and holder() is not None


class _Entry:
    """One registry slot: the breaker, its use flag, and whether it is still registered.

    The entry is its breaker's observer, so that an evicted breaker still finishing a
    call that started before the eviction reports nothing under a name that is gone.
    """

    __slots__ = ("breaker", "key", "live", "observer", "used")

    def __init__(self, key: Key, observer: Optional[Observer]) -> None:
        self.key = key
        self.observer = observer
        self.used = True  # a new circuit gets one full round of the sweep
        self.live = True
        self.breaker: CircuitBreaker  # set right after, the breaker needs the entry first

    def __call__(self, transition: Transition) -> None:
        if self.live and self.observer is not None:
            self.observer(transition)

    def is_evictable(self) -> bool:
        breaker = self.breaker
        return (
            self.key[2] != ""
            and breaker.state is CircuitState.CLOSED
            and breaker.consecutive_failures == 0
        )


class Circuits:
    """The breakers of one installation, created on first use, at most ``max_circuits``."""

    def __init__(
        self,
        *,
        scope: str,
        prefix: str,
        policy: BreakerPolicy,
        clock: Clock,
        observer: Optional[Observer] = None,
        on_created: Optional[Callable[[CircuitBreaker], None]] = None,
        on_removed: Optional[Callable[[CircuitBreaker], None]] = None,
        max_circuits: int = DEFAULT_MAX_CIRCUITS,
        breaker_factory: Optional[BreakerFactory] = None,
    ) -> None:
        if scope not in ("service", "operation", "bucket"):
            raise ValueError(f"unknown scope {scope!r}")
        if max_circuits < 1:
            raise ValueError(f"max_circuits must be >= 1, not {max_circuits!r}")
        self._by_operation = scope == "operation"
        self._by_bucket = scope == "bucket"
        self._prefix = f"{prefix}/" if prefix else ""
        self._policy = policy
        self._clock = clock
        self._observer = observer
        self._on_created = on_created
        self._on_removed = on_removed
        self._factory: BreakerFactory = breaker_factory or CircuitBreaker
        self._max = max_circuits
        self._by_key: dict[Key, _Entry] = {}
        self._ring: list[_Entry] = []  # every entry once, in sweep order
        self._hand = 0  # where the next sweep starts
        self._sweep_after = float("-inf")
        self._lock = _fork.new_lock()
        _fork.at_fork_in_child(self._after_fork_in_child)

    @property
    def max_circuits(self) -> int:
        return self._max

    def key(self, service: str, region: Optional[str], operation: str, bucket: str) -> Key:
        """The cache key of the circuit a call belongs to (cheap: no formatting)."""
        detail = operation if self._by_operation else bucket if self._by_bucket else ""
        return (service, region or _GLOBAL, detail)

    def breaker_for(
        self, service: str, region: Optional[str], operation: str, bucket: str
    ) -> CircuitBreaker:
        """The breaker of the circuit a call belongs to, created (or evicted for) if need be."""
        # key(), inlined: this runs on every call.
        detail = operation if self._by_operation else bucket if self._by_bucket else ""
        key = (service, region or _GLOBAL, detail)
        entry = self._by_key.get(key)
        if entry is not None:
            entry.used = True  # a plain store, no lock: losing one to a race is harmless
            return entry.breaker
        return self._create(key)

    def _create(self, key: Key) -> CircuitBreaker:
        full = key[2] != "" and len(self._by_key) >= self._max
        if full and self._clock.monotonic() < self._sweep_after:  # swept in vain just now
            return self._service_breaker(key)
        with self._lock:
            entry = self._by_key.get(key)
            if entry is not None:  # another thread created it while we waited
                return entry.breaker
            victim = None
            if key[2] != "" and len(self._by_key) >= self._max:  # again, under the lock
                victim = self._sweep()
                if victim is None:
                    self._sweep_after = self._clock.monotonic() + _RESWEEP_AFTER
                    key = (key[0], key[1], "")
                    entry = self._by_key.get(key)
                    if entry is not None:
                        return entry.breaker
            entry = self._new_entry(key)
            _holders[entry.breaker] = weakref.ref(self)
            if victim is None:
                self._ring.append(entry)
            else:
                evicted = victim.breaker
                victim.live = False
                # The breaker observes its entry: without this, breaker <-> entry is a cycle
                # and every evicted circuit waits for the cycle collector (10,000s of them,
                # with their states, under a stream of new bucket names).
                del victim.breaker
                _holders.pop(evicted, None)
                del self._by_key[victim.key]
                self._ring[self._hand] = entry
                self._hand = (self._hand + 1) % len(self._ring)
            self._by_key[key] = entry
            # Told under the lock, so that an evicted name and the same name created
            # again reach the metrics in the order they happened.
            if victim is not None and self._on_removed is not None:
                self._on_removed(evicted)
            if self._on_created is not None:
                self._on_created(entry.breaker)
        return entry.breaker

    def _service_breaker(self, key: Key) -> CircuitBreaker:
        """The service circuit a call falls back to when there is no room for its own."""
        service_key = (key[0], key[1], "")
        entry = self._by_key.get(service_key)
        return entry.breaker if entry is not None else self._create(service_key)

    def _new_entry(self, key: Key) -> _Entry:
        service, region, detail = key
        name = f"{self._prefix}{service}/{region}" + (f"/{detail}" if detail else "")
        entry = _Entry(key, self._observer)
        entry.breaker = self._factory(name, self._policy, self._clock, entry)
        return entry

    def _sweep(self) -> Optional[_Entry]:
        """The entry to evict, leaving the hand on its slot; ``None`` if none can be.

        Called with the lock held. Two rounds at most: the first may only clear flags.
        """
        ring = self._ring
        for _ in range(2 * len(ring)):
            entry = ring[self._hand]
            if entry.used:
                entry.used = False
            elif entry.is_evictable():
                return entry
            self._hand = (self._hand + 1) % len(ring)
        return None

    def _after_fork_in_child(self) -> None:
        # A forked child keeps every circuit with its state (an open circuit stays open:
        # the service is as down for the child as for the parent), but the breakers'
        # locks may have been held by threads that do not exist in the child.
        for entry in list(self._ring):
            entry.breaker._reinit_lock_after_fork()

    def breakers(self) -> dict[str, CircuitBreaker]:
        """A snapshot ``{circuit_name: breaker}``."""
        with self._lock:
            return {entry.breaker.name: entry.breaker for entry in self._by_key.values()}

    def __len__(self) -> int:
        return len(self._by_key)
