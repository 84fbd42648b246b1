"""Which request gets which fault: an ordered, thread-safe list of rules.

Both the local S3 server and the in-process injector keep a :class:`RuleBook`.
A request is described by a few plain facts (``{"operation": "GetObject",
"method": "GET", ...}``); the first active rule whose criteria all match those
facts fires, and a one-shot rule counts down as it fires.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Generic, Optional, TypeVar

__all__ = ["FaultRule", "RuleBook"]

F = TypeVar("F")


class FaultRule(Generic[F]):
    """One injected fault: what, how many more times (``None``: until removed), for which requests.

    Returned by ``inject()``; keep it to look at :attr:`fired` or to
    :meth:`remove` the rule early.

    >>> from botocore_resilience.testing import FaultInjector, SLOW_DOWN
    >>> rule = FaultInjector().inject(SLOW_DOWN, times=2, operation="GetObject")
    >>> rule.remaining, rule.fired, rule.active
    (2, 0, True)
    >>> rule.remove()
    >>> rule.active
    False
    """

    def __init__(
        self,
        book: RuleBook[F],
        fault: F,
        times: Optional[int],
        criteria: Mapping[str, str],
    ) -> None:
        self._book = book
        self.fault = fault
        self.times = times
        self.criteria = dict(criteria)
        # Mutable state below is guarded by the book's lock.
        self._fired = 0
        self._removed = False

    @property
    def fired(self) -> int:
        """How many requests this rule has failed so far."""
        with self._book._lock:
            return self._fired

    @property
    def remaining(self) -> Optional[int]:
        """How many more requests it will fail (``None``: no limit, until removed)."""
        with self._book._lock:
            return self._remaining_locked()

    @property
    def active(self) -> bool:
        """``True`` while it can still fire."""
        with self._book._lock:
            return self._active_locked()

    def remove(self) -> None:
        """Stop this rule from firing again (idempotent)."""
        self._book.remove(self)

    def _remaining_locked(self) -> Optional[int]:
        if self._removed:
            return 0
        return None if self.times is None else self.times - self._fired

    def _active_locked(self) -> bool:
        remaining = self._remaining_locked()
        return remaining is None or remaining > 0

    def _matches(self, facts: Mapping[str, Optional[str]]) -> bool:
        return all(facts.get(name) == value for name, value in self.criteria.items())

    def __repr__(self) -> str:
        scope = ", ".join(f"{k}={v!r}" for k, v in self.criteria.items())
        times = "sticky" if self.times is None else f"times={self.times}"
        return f"FaultRule({self.fault!r}, {times}{', ' + scope if scope else ''})"


class RuleBook(Generic[F]):
    """Rules in the order they were added; one lock guards them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule[F]] = []
        self._injected = 0

    def add(
        self, fault: F, times: Optional[int], criteria: Mapping[str, Optional[str]]
    ) -> FaultRule[F]:
        """Add a rule; criteria whose value is ``None`` match anything and are dropped."""
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(
                f"times must be an integer >= 1, or None for 'until removed'; not {times!r}"
            )
        rule = FaultRule(self, fault, times, {k: v for k, v in criteria.items() if v is not None})
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, facts: Mapping[str, Optional[str]]) -> Optional[F]:
        """The fault for a request with these facts, if a rule fires for it (and count it)."""
        with self._lock:
            for rule in self._rules:
                if rule._active_locked() and rule._matches(facts):
                    rule._fired += 1
                    self._injected += 1
                    if not rule._active_locked():
                        self._rules.remove(rule)
                    return rule.fault
        return None

    def remove(self, rule: FaultRule[F]) -> None:
        with self._lock:
            rule._removed = True
            if rule in self._rules:
                self._rules.remove(rule)

    def clear(self) -> None:
        """Remove every rule (the count of injected faults is kept; see :meth:`reset_count`)."""
        with self._lock:
            for rule in self._rules:
                rule._removed = True
            self._rules.clear()

    def reset_count(self) -> None:
        with self._lock:
            self._injected = 0

    @property
    def injected(self) -> int:
        """How many faults all rules together have injected."""
        with self._lock:
            return self._injected

    @property
    def rules(self) -> list[FaultRule[F]]:
        """The rules that can still fire, in the order they are tried."""
        with self._lock:
            return list(self._rules)
