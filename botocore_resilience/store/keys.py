"""Key and channel names in the store: circuit names and numbers only, never a secret.

Every key of one circuit carries the circuit name as a Redis Cluster *hash tag*
(the part between ``{`` and ``}``), so they all live in one hash slot and one Lua
script may touch them together, on a single server or on a cluster.

>>> state_key("s3/us-east-1"), probes_key("s3/us-east-1")
('botocore_resilience:{s3/us-east-1}', 'botocore_resilience:{s3/us-east-1}:probes')
>>> circuit_of(state_key("odd{name}"))
'odd{name}'
"""

from __future__ import annotations

from typing import Optional

__all__ = ["CHANNEL", "PREFIX", "STATE_PATTERN", "circuit_of", "probes_key", "state_key"]

PREFIX = "botocore_resilience:"
CHANNEL = "botocore_resilience:transitions"
"""Where every change of a circuit's fleet state is published (one message per change)."""
STATE_PATTERN = PREFIX + "{*}"
"""SCAN pattern of the state keys (probe keys end in ``:probes`` and do not match)."""


def _escape(name: str) -> str:
    # A brace inside the name would end the hash tag early and split one circuit's keys
    # over two slots; '%' is escaped first so that the mapping can be undone.
    return name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def _unescape(text: str) -> str:
    return text.replace("%7D", "}").replace("%7B", "{").replace("%25", "%")


def state_key(circuit: str) -> str:
    """The hash holding one circuit's state."""
    return f"{PREFIX}{{{_escape(circuit)}}}"


def probes_key(circuit: str) -> str:
    """The sorted set of one circuit's leased probe slots (member: token, score: expiry ms)."""
    return f"{state_key(circuit)}:probes"


def circuit_of(key: str) -> Optional[str]:
    """The circuit name of a state key, or ``None`` for any other key."""
    if not (key.startswith(PREFIX + "{") and key.endswith("}")):
        return None
    return _unescape(key[len(PREFIX) + 1 : -1])
