"""Settings: one table of (option, environment variable, default, parser), one frozen result.

Settings are read when ``install()`` runs — never at import — from the mapping it
is given (``os.environ`` by default), then keyword overrides are applied. Every
value goes through the same parser whichever way it came, and the first bad one
raises :class:`~botocore_resilience.ConfigurationError` naming the variable, the
value and what is accepted, before anything is registered.

>>> settings = Settings.from_env({"BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "3"}, scope="bucket")
>>> settings.failure_threshold, settings.scope, settings.recovery_timeout
(3, 'bucket', 60.0)
>>> settings.source_of("failure_threshold"), settings.source_of("scope")
('environment', 'keyword')
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Callable, NamedTuple, Optional

from .errors import ConfigurationError

__all__ = ["ENV_PREFIX", "SETTINGS", "Setting", "Settings", "unknown_variables"]

ENV_PREFIX = "BOTOCORE_RESILIENCE_"

RETRY_MODES = ("adaptive", "standard", "legacy")
BREAKER_MODES = ("on", "off", "metrics-only")
SCOPES = ("service", "operation", "bucket")

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_DIGITS = re.compile(r"\s*\+?[0-9]+\s*\Z")  # ASCII only: "٣" is not a count
_NAME = re.compile(r"[A-Za-z0-9_.-]*\Z")
_METRIC_PREFIX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)


class _Invalid(Exception):
    """Raised by a parser; carries what the setting accepts."""

    def __init__(self, accepted: str) -> None:
        super().__init__(accepted)
        self.accepted = accepted


# -- parsers: each takes a str (from the environment) or a Python value (from a keyword) --


def _boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _Invalid("a boolean: true/false, 1/0, yes/no or on/off")


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise _Invalid("one of " + ", ".join(choices))

    return parse


def _number(value: object, accepted: str) -> float:
    if isinstance(value, bool):  # bool is an int subclass: True is not a threshold
        raise _Invalid(accepted)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _Invalid(accepted) from None
    else:
        raise _Invalid(accepted)
    if not math.isfinite(number):
        raise _Invalid(accepted)
    return number


def _count(value: object) -> int:
    accepted = "an integer >= 1"
    if isinstance(value, str) and not _DIGITS.match(value):
        raise _Invalid(accepted)  # "2.5", "1e3", "-1" are not counts
    if isinstance(value, float):
        raise _Invalid(accepted)  # as "2.0" is refused from the environment
    number = _number(value, accepted)
    if number != int(number) or number < 1:
        raise _Invalid(accepted)
    return int(number)


def _seconds(value: object) -> float:
    number = _number(value, "a finite number of seconds > 0")
    if number <= 0:
        raise _Invalid("a finite number of seconds > 0")
    return number


def _port(value: object) -> Optional[int]:
    accepted = "a TCP port, an integer from 1 to 65535 (or empty for no /metrics server)"
    if value is None:
        return None
    if isinstance(value, float) or (isinstance(value, str) and not _DIGITS.match(value)):
        raise _Invalid(accepted)
    number = _number(value, accepted)
    if number != int(number) or not 1 <= number <= 65535:
        raise _Invalid(accepted)
    return int(number)


def _address(value: object) -> str:
    accepted = "an IP address or host name to bind, e.g. 0.0.0.0, 127.0.0.1 or ::"
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(accepted)
    text = value.strip()
    try:
        ipaddress.ip_address(text)
    except ValueError:
        # "256.1.1.1" would pass as a host name: an all-numeric dotted name must be an IP.
        if not _HOSTNAME.match(text) or text.replace(".", "").isdigit():
            raise _Invalid(accepted) from None
    return text


def _name(value: object) -> str:
    if isinstance(value, str) and _NAME.match(value.strip()):
        return value.strip()
    raise _Invalid("letters, digits, '.', '_' or '-' (it prefixes circuit names)")


def _metric_prefix(value: object) -> str:
    if isinstance(value, str) and _METRIC_PREFIX.match(value.strip()):
        return value.strip()
    raise _Invalid("a Prometheus metric name prefix matching [a-zA-Z_:][a-zA-Z0-9_:]*")


class Setting(NamedTuple):
    """One row of the table: the single source of truth for a setting."""

    option: str
    env: str
    default: Any
    parse: Callable[[object], Any]
    help: str


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(option, ENV_PREFIX + option.upper(), default, parse, help)
    for option, default, parse, help in (
        ("enabled", True, _boolean, "kill switch: false makes install() register nothing"),
        ("name", "", _name, "prefix of circuit names, to tell installations apart"),
        (
            "retry_mode",
            "adaptive",
            _choice(*RETRY_MODES),
            "botocore retry mode where the user set none",
        ),
        ("max_attempts", 4, _count, "total attempts incl. the first, where the user set none"),
        (
            "breaker",
            "on",
            _choice(*BREAKER_MODES),
            "on, off (retry + metrics only) or metrics-only",
        ),
        ("scope", "service", _choice(*SCOPES), "what one circuit covers"),
        ("failure_threshold", 5, _count, "consecutive failed calls that open a closed circuit"),
        ("recovery_timeout", 60.0, _seconds, "seconds open before a probe may go"),
        ("success_threshold", 2, _count, "good probes that close a half-open circuit"),
        ("half_open_max_calls", 1, _count, "probes in flight at once while half-open"),
        ("max_circuits", 1000, _count, "most circuits kept; beyond, idle closed ones are evicted"),
        ("metrics", True, _boolean, "export Prometheus metrics"),
        ("metrics_namespace", "botocore", _metric_prefix, "metric name prefix"),
        ("metrics_port", None, _port, "serve /metrics on this port (unset: no server)"),
        ("metrics_addr", "0.0.0.0", _address, "address the /metrics server binds to"),
    )
)

_BY_OPTION = {setting.option: setting for setting in SETTINGS}
_ENV_NAMES = frozenset(setting.env for setting in SETTINGS)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``BOTOCORE_RESILIENCE_*`` names in ``environ`` that are no setting: likely typos."""
    return sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in _ENV_NAMES)


@dataclass(frozen=True)
class Settings:
    """The effective settings of one installation. Build with :meth:`from_env`."""

    enabled: bool = True
    name: str = ""
    retry_mode: str = "adaptive"
    max_attempts: int = 4
    breaker: str = "on"
    scope: str = "service"
    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    success_threshold: int = 2
    half_open_max_calls: int = 1
    max_circuits: int = 1000
    metrics: bool = True
    metrics_namespace: str = "botocore"
    metrics_port: Optional[int] = None
    metrics_addr: str = "0.0.0.0"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Where each value came from: ``"default"``, ``"environment"`` or ``"keyword"``."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Read every ``BOTOCORE_RESILIENCE_*`` variable from ``environ``, then apply ``overrides``.

        An empty variable counts as unset. Raises :class:`ConfigurationError` on the first
        bad value, or on a keyword that is not a setting.
        """
        for option in overrides:
            if option not in _BY_OPTION:
                raise ConfigurationError(
                    variable=option,
                    value=overrides[option],
                    accepted="a keyword naming a setting: " + ", ".join(_BY_OPTION),
                )
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for setting in SETTINGS:
            if setting.option in overrides:
                raw, source, where = overrides[setting.option], "keyword", setting.option
            elif environ.get(setting.env, "").strip():
                raw, source, where = environ[setting.env], "environment", setting.env
            else:
                values[setting.option] = setting.default
                sources[setting.option] = "default"
                continue
            try:
                values[setting.option] = setting.parse(raw)
            except _Invalid as invalid:
                raise ConfigurationError(
                    variable=where, value=raw, accepted=invalid.accepted
                ) from None
            sources[setting.option] = source
        return cls(**values, sources=sources)

    def source_of(self, option: str) -> str:
        return self.sources.get(option, "default")

    def as_dict(self) -> dict[str, Any]:
        """The settings by option name (without ``sources``)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sources"}
