"""Settings: one frozen dataclass whose fields are the table of (option, default, parser, help).

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

One rule for every number (``docs/reference/settings.md`` says it for users): written
in ASCII digits (Arabic-Indic or fullwidth digits and ``1_000`` are refused, though
Python's ``int()`` takes them), finite, and at most :data:`MAX_NUMBER`; counts are whole numbers (no
``2.0``, no ``1e3``), times may have a fraction and an exponent. A huge keyword is a
``ConfigurationError`` like any other bad value, never an ``OverflowError`` nor
silently rounded.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, NamedTuple, Optional, Union, get_args

from .errors import ConfigurationError
from .store.url import ACCEPTED as STATE_URL_ACCEPTED
from .store.url import InvalidStateUrl, StateUrl, redact_url
from .store.url import parse_state_url as parse_url

__all__ = [
    "ENV_PREFIX",
    "MAX_NUMBER",
    "SETTINGS",
    "BreakerMode",
    "InvalidValue",
    "MetricsMode",
    "RetryMode",
    "Scope",
    "Setting",
    "Settings",
    "is_valid_namespace",
    "unknown_variable_warnings",
    "unknown_variables",
]

ENV_PREFIX = "BOTOCORE_RESILIENCE_"

RetryMode = Literal["adaptive", "standard", "legacy"]
BreakerMode = Literal["on", "off", "metrics-only"]
Scope = Literal["service", "operation", "bucket"]
MetricsMode = Literal["prometheus", "otel", "off"]

RETRY_MODES: tuple[str, ...] = get_args(RetryMode)
BREAKER_MODES: tuple[str, ...] = get_args(BreakerMode)
SCOPES: tuple[str, ...] = get_args(Scope)
METRICS_MODES: tuple[str, ...] = get_args(MetricsMode)

MAX_NUMBER = 1_000_000_000
"""The largest count or number of seconds any setting takes: far above any sensible value,
far below where ints stop fitting a float or a C long."""

MAX_NAME_LENGTH = 64

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
# Explicit [0-9], never \d: \d matches every script's digits (and int() takes those, and "1_000").
_WHOLE = re.compile(r"\+?[0-9]+\Z")
_DECIMAL = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_NAME = re.compile(rf"[A-Za-z0-9_.-]{{0,{MAX_NAME_LENGTH}}}\Z")
_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\Z"
)
# A last label that URL parsers and inet_aton() read as a number makes the whole name an
# IPv4 address in disguise ("127.1", "0x0", "0x7f.1"): not a host name (WHATWG URL rule).
_NUMERIC_LABEL = re.compile(r"(?:[0-9]+|0[xX][0-9A-Fa-f]*)\Z")


class InvalidValue(ValueError):
    """Raised by a setting's parser; ``accepted`` says what the setting accepts, in words."""

    def __init__(self, accepted: str, *, shown: Optional[str] = None) -> None:
        super().__init__(accepted)
        self.accepted = accepted
        self.shown = shown
        """The value as the error may show it, when not as given (a URL without its password)."""


# -- parsers: each takes a str (from the environment) or a Python value (from a keyword) --


def parse_boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidValue("a boolean: true/false, 1/0, yes/no or on/off")


def parse_metrics(value: object) -> str:
    """``prometheus``, ``otel`` or ``off``; a boolean keeps its old meaning (on: prometheus)."""
    if isinstance(value, str) and value.strip().lower() in METRICS_MODES:
        return value.strip().lower()
    try:
        return "prometheus" if parse_boolean(value) else "off"
    except InvalidValue:
        raise InvalidValue(
            "prometheus, otel or off (a boolean also works: true/1/yes/on mean prometheus)"
        ) from None


def _choice(choices: Any) -> Callable[[object], Any]:
    """The parser of a ``Literal`` type: one of its values, in any case."""
    words: tuple[str, ...] = get_args(choices)

    def parse(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in words:
            return value.strip().lower()
        raise InvalidValue("one of " + ", ".join(words))

    return parse


def parse_number(value: object, accepted: str, *, whole: bool) -> Union[int, float]:
    """The one rule for numbers; ``whole`` for counts. Raises :class:`InvalidValue`."""
    number: Union[int, float]
    if isinstance(value, bool):  # bool is an int subclass: True is not a threshold
        raise InvalidValue(accepted)
    if isinstance(value, int):
        number = value  # compared exactly below: 10**30 never goes through a float
    elif isinstance(value, float) and not whole:  # 2.0 is refused as "2.0" is
        number = value
    elif isinstance(value, str) and (_WHOLE if whole else _DECIMAL).match(value.strip()):
        try:
            number = int(value) if whole else float(value)
        except ValueError:  # more digits than int() converts (Python 3.11+)
            raise InvalidValue(accepted) from None
    else:
        raise InvalidValue(accepted)
    if not (isinstance(number, int) or math.isfinite(number)) or abs(number) > MAX_NUMBER:
        raise InvalidValue(accepted)
    return number


def parse_count(value: object) -> int:
    """A whole number from 1 to :data:`MAX_NUMBER`."""
    accepted = f"an integer from 1 to {MAX_NUMBER}"
    number = parse_number(value, accepted, whole=True)
    if number < 1:
        raise InvalidValue(accepted)
    return int(number)


def parse_positive(value: object, unit: str = "") -> float:
    """A number > 0 and <= :data:`MAX_NUMBER`, fractions allowed; ``unit`` words the error."""
    accepted = f"a number{unit} > 0 and <= {MAX_NUMBER}"
    number = parse_number(value, accepted, whole=False)
    if number <= 0:
        raise InvalidValue(accepted)
    return float(number)


def parse_seconds(value: object) -> float:
    return parse_positive(value, " of seconds")


def parse_percent(value: object) -> Optional[float]:
    """A percentage, fractional or whole: > 0 and <= 100 (``None``: unset)."""
    accepted = "a percentage > 0 and <= 100 (e.g. 50 or 12.5), or empty for none"
    if value is None:
        return None
    number = parse_number(value, accepted, whole=False)
    if not 0 < number <= 100:
        raise InvalidValue(accepted)
    return float(number)


def parse_optional_seconds(value: object) -> Optional[float]:
    """Seconds as :func:`parse_seconds`, or ``None`` (unset)."""
    return None if value is None else parse_seconds(value)


def parse_port(value: object) -> Optional[int]:
    accepted = "a TCP port, an integer from 1 to 65535 (or empty for no /metrics server)"
    if value is None:
        return None
    number = parse_number(value, accepted, whole=True)
    if not 1 <= number <= 65535:
        raise InvalidValue(accepted)
    return int(number)


def parse_address(value: object) -> str:
    """An IPv4 address in dotted-quad form, an IPv6 address (no brackets), or a host name."""
    accepted = (
        "an IPv4 address (four decimal parts, e.g. 0.0.0.0 or 127.0.0.1), an IPv6 address "
        "(e.g. :: or ::1, no brackets) or a host name"
    )
    if not isinstance(value, str):
        raise InvalidValue(accepted)
    text = value.strip()
    try:
        ipaddress.ip_address(text)  # strict: no "127.1", no "0x7f.0.0.1", no leading zeros
    except ValueError:
        last_label = text.rsplit(".", 1)[-1]
        if not _HOSTNAME.match(text) or _NUMERIC_LABEL.match(last_label):
            raise InvalidValue(accepted) from None
    return text


def parse_name(value: object) -> str:
    if isinstance(value, str) and _NAME.match(value.strip()):
        return value.strip()
    raise InvalidValue(
        f"at most {MAX_NAME_LENGTH} letters, digits, '.', '_' or '-' (it prefixes circuit names)"
    )


def is_valid_namespace(namespace: str) -> bool:
    """Whether ``namespace`` can prefix Prometheus metric names (``""`` means no prefix).

    >>> is_valid_namespace("botocore"), is_valid_namespace("my-app")
    (True, False)
    """
    return namespace == "" or _NAMESPACE.match(namespace) is not None


def parse_namespace(value: object) -> str:
    # Empty is valid for the metrics themselves (no prefix) but not as a setting: an empty
    # variable means "unset", and the keyword follows the variable.
    if isinstance(value, str) and value.strip() and is_valid_namespace(value.strip()):
        return value.strip()
    raise InvalidValue("a Prometheus metric name prefix matching [a-zA-Z_:][a-zA-Z0-9_:]*")


def parse_state_url(value: object) -> Optional[StateUrl]:
    if value is None or isinstance(value, StateUrl):
        return value
    if not isinstance(value, str):
        raise InvalidValue(STATE_URL_ACCEPTED)
    try:
        return parse_url(value)
    except InvalidStateUrl as invalid:
        shown = redact_url(value)
        raise InvalidValue(str(invalid), shown=shown if shown != value else None) from None


_OPERATION = re.compile(r"^[A-Z][A-Za-z0-9]{0,127}$")


def parse_operations(value: object) -> str:
    """Operation names (``"AbortMultipartUpload,DeleteObject"``), or ``none``; normalised to
    the names joined by commas, each once, in the order given (``""`` for none). A list of
    names works as a keyword."""
    accepted = "operation names as botocore spells them, separated by commas (or none)"
    if isinstance(value, str):
        names = [] if value.strip().lower() == "none" else value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        names = list(value)
    else:
        raise InvalidValue(accepted)
    kept: list[str] = []
    for name in names:
        if not isinstance(name, str) or not _OPERATION.match(name.strip()):
            raise InvalidValue(accepted)
        if name.strip() not in kept:
            kept.append(name.strip())
    return ",".join(kept)


def _setting(default: Any, parse: Callable[[object], Any], help: str) -> Any:
    """A field of :class:`Settings`: its default, its parser and one line of help."""
    return field(default=default, metadata={"parse": parse, "help": help})


@dataclass(frozen=True)
class Settings:
    """The effective settings of one installation. Build with :meth:`from_env`.

    Each field is one setting, written once: its type, default, parser and help. The
    option is the field's name, the variable ``BOTOCORE_RESILIENCE_`` + its name in upper
    case; :data:`SETTINGS`, ``python -m botocore_resilience config`` and the docs' tests
    all follow from here. ``Settings()`` holds the defaults.
    """

    enabled: bool = _setting(
        True, parse_boolean, "kill switch: false makes install() register nothing"
    )
    name: str = _setting("", parse_name, "prefix of circuit names, to tell installations apart")
    retry_mode: RetryMode = _setting(  # noqa: RUF009 (returns a dataclasses.field)
        "standard", _choice(RetryMode), "botocore retry mode where the user set none"
    )
    max_attempts: int = _setting(
        4, parse_count, "total attempts incl. the first, where the user set none"
    )
    breaker: BreakerMode = _setting(  # noqa: RUF009 (returns a dataclasses.field)
        "on", _choice(BreakerMode), "on, off (retry + metrics only) or metrics-only"
    )
    scope: Scope = _setting(  # noqa: RUF009 (returns a dataclasses.field)
        "service", _choice(Scope), "what one circuit covers"
    )
    failure_threshold: int = _setting(
        5, parse_count, "consecutive failed calls that open a closed circuit"
    )
    recovery_timeout: float = _setting(60.0, parse_seconds, "seconds open before a probe may go")
    success_threshold: int = _setting(2, parse_count, "good probes that close a half-open circuit")
    half_open_max_calls: int = _setting(1, parse_count, "probes in flight at once while half-open")
    failure_rate: Optional[float] = _setting(
        None, parse_percent, "percent of failed calls in the window that opens (unset: none)"
    )
    window: float = _setting(60.0, parse_seconds, "seconds covered by the failure-rate window")
    minimum_calls: int = _setting(
        20, parse_count, "judged calls the window needs before its rate may open"
    )
    slow_call_duration: Optional[float] = _setting(
        None, parse_optional_seconds, "seconds after which a sent call counts as failed"
    )
    recovery_timeout_max: Optional[float] = _setting(
        None,
        parse_optional_seconds,
        "longest open period as failed probes double it (unset: no growth)",
    )
    max_circuits: int = _setting(
        1000, parse_count, "most circuits kept; beyond, idle closed ones are evicted"
    )
    exempt_operations: str = _setting(
        "AbortMultipartUpload",
        parse_operations,
        "operations an open circuit lets through (cleanup), comma-separated, or none",
    )
    metrics: MetricsMode = _setting(  # noqa: RUF009 (returns a dataclasses.field)
        "prometheus", parse_metrics, "prometheus (what on means), otel (OpenTelemetry) or off"
    )
    metrics_namespace: str = _setting("botocore", parse_namespace, "metric name prefix")
    metrics_port: Optional[int] = _setting(
        None, parse_port, "serve /metrics on this port (unset: no server)"
    )
    metrics_addr: str = _setting("0.0.0.0", parse_address, "address the /metrics server binds to")
    state_url: Optional[StateUrl] = _setting(  # noqa: RUF009 (returns a dataclasses.field)
        None,
        parse_state_url,
        "share circuits with the fleet through this Redis (unset: each process alone)",
    )
    state_timeout: float = _setting(
        0.05, parse_seconds, "most seconds the state store may add to a call"
    )
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
            except InvalidValue as invalid:
                shown = raw if invalid.shown is None else invalid.shown
                raise ConfigurationError(
                    variable=where, value=shown, accepted=invalid.accepted
                ) from None
            sources[setting.option] = source
        _check_together(values, sources)
        return cls(**values, sources=sources)

    @property
    def max_open_period(self) -> float:
        """``recovery_timeout_max``, or ``recovery_timeout`` where it is unset."""
        limit = self.recovery_timeout_max
        return self.recovery_timeout if limit is None else limit

    def source_of(self, option: str) -> str:
        return self.sources.get(option, "default")

    def as_dict(self) -> dict[str, Any]:
        """The settings by option name (without ``sources``)."""
        return {setting.option: getattr(self, setting.option) for setting in SETTINGS}


def _check_together(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """Rules between settings, after each was parsed alone."""
    limit, timeout = values["recovery_timeout_max"], values["recovery_timeout"]
    if limit is not None and limit < timeout:
        option = "recovery_timeout_max"
        raise ConfigurationError(
            variable=option if sources[option] == "keyword" else ENV_PREFIX + option.upper(),
            value=limit,
            accepted=f"a number of seconds >= recovery_timeout ({timeout:g})",
        )


class Setting(NamedTuple):
    """One row of the table, as read from a field of :class:`Settings`."""

    option: str
    env: str
    default: Any
    parse: Callable[[object], Any]
    help: str


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, ENV_PREFIX + f.name.upper(), f.default, f.metadata["parse"], f.metadata["help"])
    for f in fields(Settings)
    if "parse" in f.metadata
)

_BY_OPTION = {setting.option: setting for setting in SETTINGS}
_ENV_NAMES = frozenset(setting.env for setting in SETTINGS)
_NEAR_PREFIX = "BOTOCORE_"  # BOTOCORE_RESILIANCE_SCOPE is a typo too


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Names in ``environ`` that look like one of our variables but are none: likely typos.

    Every ``BOTOCORE_RESILIENCE_*`` name that is no setting, and ``BOTOCORE_*`` names close
    to one of ours (a misspelt prefix); botocore's own ``BOTOCORE_*`` variables are not.
    """
    found = []
    for name in environ:
        if name in _ENV_NAMES or not name.startswith(_NEAR_PREFIX):
            continue
        if name.startswith(ENV_PREFIX) or _closest(name):
            found.append(name)
    return sorted(found)


def unknown_variable_warnings(environ: Mapping[str, str]) -> list[str]:
    """One warning per :func:`unknown_variables` name, with the nearest setting if any.

    >>> print(*unknown_variable_warnings({"BOTOCORE_RESILIENCE_SCOP": "bucket"}))
    ignoring unknown setting BOTOCORE_RESILIENCE_SCOP (did you mean BOTOCORE_RESILIENCE_SCOPE?)
    """
    warnings = []
    for name in unknown_variables(environ):
        nearest = _closest(name)
        hint = f"did you mean {nearest}?" if nearest else "a typo?"
        warnings.append(f"ignoring unknown setting {name} ({hint})")
    return warnings


def _closest(name: str) -> Optional[str]:
    """The setting ``name`` was probably meant to be: for our prefix, judged on the rest of
    the name (the shared prefix would make every name look close to every other)."""
    if name.startswith(ENV_PREFIX):
        tails = [setting.option.upper() for setting in SETTINGS]
        found = difflib.get_close_matches(name[len(ENV_PREFIX) :], tails, n=1, cutoff=0.7)
        return ENV_PREFIX + found[0] if found else None
    found = difflib.get_close_matches(name, sorted(_ENV_NAMES), n=1, cutoff=0.85)
    return found[0] if found else None
