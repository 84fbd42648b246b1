"""How to run the demo: what ``python -m botocore_resilience demo``'s flags set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["DemoOptions"]


@dataclass(frozen=True)
class DemoOptions:
    """How to run the demo; the defaults are ``python -m botocore_resilience demo``."""

    duration_scale: float = 1.0
    """Multiplies phase lengths and the recovery timeout."""
    workers: int = 4
    rate: float = 5.0
    """Calls per second per worker thread."""
    retry_mode: str = "standard"
    max_attempts: int = 3
    metrics_port: Optional[int] = None
    metrics_addr: str = "127.0.0.1"
    color: Optional[bool] = None
    """``None``: colours on a terminal, unless ``NO_COLOR`` is set."""
    scenario: str = "outage"
    """A name of :data:`~botocore_resilience.demo.scenario.SCENARIOS`."""
    fleet: Optional[int] = None
    """Worker processes (``--fleet N``), with and without a shared ``redis-server``;
    ``None``: the scenario, in this process."""
