"""Settings: every row of ``config.SETTINGS``, good and bad, from the environment and from keywords.

The cases are keyed by option and checked against the table itself, so a row added to
``SETTINGS`` without cases here fails :func:`test_every_row_has_cases`.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, NamedTuple

import botocore.session
import pytest
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.config import ENV_PREFIX, SETTINGS, Setting, Settings
from botocore_resilience.errors import ConfigurationError
from botocore_resilience.handlers import EventHandlers
from botocore_resilience.install import _installation_of as installation_of
from botocore_resilience.store import StateUrl

_TRUE_SPELLINGS = ["true", "1", "yes", "on"]
_FALSE_SPELLINGS = ["false", "0", "no", "off"]


def _cases_of_spelling(words: list[str], expected: bool) -> list[tuple[str, bool]]:
    """Every spelling in lower, upper, title and mixed case, plus one padded with spaces."""
    cases = []
    for word in words:
        mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(word))
        for spelling in {word, word.upper(), word.title(), mixed}:
            cases.append((spelling, expected))
    cases.append((f"  {words[0]} ", expected))
    return cases


_BOOLEAN_GOOD_ENV = _cases_of_spelling(_TRUE_SPELLINGS, True) + _cases_of_spelling(
    _FALSE_SPELLINGS, False
)
_BOOLEAN_BAD_ENV = ["maybe", "2", "-1", "t", "f", "y", "n", "truee", "1.0", "none", "enabled"]
# ints (1/0) passed as keywords are not in the contract's list for keywords either way: untested.
_BOOLEAN_GOOD_KW = [
    (True, True),
    (False, False),
    ("yes", True),
    ("OFF", False),
    (1, True),
    (0, False),
]
_BOOLEAN_BAD_KW = [None, "maybe", 1.0, 2, -1, [], "", "   "]

_COUNT_GOOD_ENV = [("1", 1), ("3", 3), (" 7 ", 7), ("+2", 2), ("100", 100)]
_COUNT_BAD_ENV = [
    "0",
    "-1",
    "-0",
    "2.5",
    "1.0",
    "0.5",
    "abc",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "1e3",
    "0x10",
    "3 attempts",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it, we do not
    "\uff15",  # FULLWIDTH DIGIT FIVE
    "1_000",  # int() takes underscores too
    "1000000001",  # above MAX_NUMBER
    "9" * 5000,  # more digits than int() converts on 3.11+: still a ConfigurationError
]
_COUNT_GOOD_KW = [(1, 1), (3, 3), (10**6, 10**6), ("4", 4), (10**9, 10**9)]
_COUNT_BAD_KW = [
    0,
    -1,
    2.0,  # refused like "2.0" from the environment
    "\u0663",  # ARABIC-INDIC DIGIT THREE: ASCII digits only
    "\uff15",
    "1_000",
    10**9 + 1,
    10**30,  # once stored as 1000000000000000019884624838656
    10**400,  # once an OverflowError
    2.5,
    0.5,
    "2.5",
    True,
    False,
    math.nan,
    math.inf,
    -math.inf,
    None,
    "abc",
    "0",
    [3],
]


class Cases(NamedTuple):
    good_env: list[tuple[str, Any]]
    bad_env: list[str]
    good_kw: list[tuple[Any, Any]]
    bad_kw: list[Any]


def _url(text: str, *, cluster: bool = False) -> StateUrl:
    return StateUrl(text, cluster=cluster)


CASES: dict[str, Cases] = {
    "enabled": Cases(_BOOLEAN_GOOD_ENV, _BOOLEAN_BAD_ENV, _BOOLEAN_GOOD_KW, _BOOLEAN_BAD_KW),
    # prometheus, otel or off; a boolean keeps its old meaning (on: prometheus).
    "metrics": Cases(
        [
            ("prometheus", "prometheus"),
            ("otel", "otel"),
            ("off", "off"),
            (" OTel ", "otel"),
            ("Prometheus", "prometheus"),
        ]
        + [(raw, "prometheus" if value else "off") for raw, value in _BOOLEAN_GOOD_ENV],
        ["prom", "opentelemetry", "otlp", "statsd", *_BOOLEAN_BAD_ENV],
        [
            ("otel", "otel"),
            ("prometheus", "prometheus"),
            ("off", "off"),
            (True, "prometheus"),
            (False, "off"),
            ("on", "prometheus"),
        ],
        [*_BOOLEAN_BAD_KW, "statsd"],
    ),
    "name": Cases(
        [("storage", "storage"), ("a.b_c-D9", "a.b_c-D9"), (" padded ", "padded"), ("x" * 64,) * 2],
        ["a/b", "has space", "x:y", "café", "a*", "x" * 65, "n" * 100_000],
        [("storage", "storage"), ("", "")],
        [3, None, True, "a/b", "tab\there"],
    ),
    "retry_mode": Cases(
        [
            ("adaptive", "adaptive"),
            ("standard", "standard"),
            ("legacy", "legacy"),
            ("ADAPTIVE", "adaptive"),
            (" Standard ", "standard"),
        ],
        ["adaptiv", "fast", "on", "1", "default"],
        [("standard", "standard"), ("Legacy", "legacy")],
        [1, None, True, "", "none"],
    ),
    "max_attempts": Cases(_COUNT_GOOD_ENV, _COUNT_BAD_ENV, _COUNT_GOOD_KW, _COUNT_BAD_KW),
    "breaker": Cases(
        [("on", "on"), ("off", "off"), ("metrics-only", "metrics-only"), ("OFF", "off")],
        ["metrics_only", "metricsonly", "true", "half", "open"],
        [("off", "off"), ("Metrics-Only", "metrics-only")],
        [True, False, None, 0, "", "enabled"],
    ),
    "scope": Cases(
        [
            ("service", "service"),
            ("operation", "operation"),
            ("bucket", "bucket"),
            ("BUCKET", "bucket"),
        ],
        ["region", "global", "services", "object"],
        [("operation", "operation")],
        [None, 1, "", "key"],
    ),
    "failure_threshold": Cases(_COUNT_GOOD_ENV, _COUNT_BAD_ENV, _COUNT_GOOD_KW, _COUNT_BAD_KW),
    "recovery_timeout": Cases(
        [("60", 60.0), ("0.5", 0.5), ("1e-3", 0.001), (" 30 ", 30.0), ("1e3", 1000.0)],
        [
            *["0", "-1", "-0.5", "0.0", "abc", "nan", "NaN", "inf", "-inf", "Infinity", "1s"],
            *["1e400", "1e10", "\u0663", "\uff15", "1_000", "0x10", "1,5"],
        ],
        [(30, 30.0), (0.25, 0.25), ("2", 2.0), (10**9, 1e9)],
        [
            *[0, 0.0, -1, math.nan, math.inf, -math.inf, True, None, "x", "0", [1], "\u0663"],
            *[10**9 + 1, 10**30, 10**400, 1e300, "1_000"],
        ],
    ),
    "success_threshold": Cases(_COUNT_GOOD_ENV, _COUNT_BAD_ENV, _COUNT_GOOD_KW, _COUNT_BAD_KW),
    "half_open_max_calls": Cases(_COUNT_GOOD_ENV, _COUNT_BAD_ENV, _COUNT_GOOD_KW, _COUNT_BAD_KW),
    "max_circuits": Cases(_COUNT_GOOD_ENV, _COUNT_BAD_ENV, _COUNT_GOOD_KW, _COUNT_BAD_KW),
    # Operation names as botocore spells them, comma-separated; "none" for no exemption.
    "exempt_operations": Cases(
        [
            ("AbortMultipartUpload", "AbortMultipartUpload"),
            (" AbortMultipartUpload , DeleteObject ", "AbortMultipartUpload,DeleteObject"),
            ("DeleteObject,DeleteObject", "DeleteObject"),
            ("none", ""),
            ("NONE", ""),
        ],
        ["abortMultipartUpload", "Abort-Multipart", "A,,B", "A;B", "1Upload", "Abort Upload"],
        [
            (["AbortMultipartUpload", "DeleteObject"], "AbortMultipartUpload,DeleteObject"),
            ((), ""),
            ("none", ""),
        ],
        [None, 1, True, [1], ["bad name"], "x"],
    ),
    # A percentage, fractional or whole: 0 < p <= 100.
    "failure_rate": Cases(
        [("50", 50.0), ("12.5", 12.5), ("100", 100.0), (" 0.1 ", 0.1), ("1e1", 10.0)],
        ["0", "-5", "100.5", "101", "nan", "inf", "50%", "half", "\u0663", "1_0"],
        [(50, 50.0), (12.5, 12.5), (100, 100.0), ("30", 30.0), (None, None)],
        [0, 0.0, -1, 100.01, 1000, math.nan, math.inf, True, "50%", "", [50]],
    ),
    "window": Cases(
        [("60", 60.0), ("0.5", 0.5), (" 30 ", 30.0)],
        ["0", "-1", "nan", "inf", "1m"],
        [(10, 10.0), (2.5, 2.5)],
        [0, -1, math.nan, math.inf, True, None, "x"],
    ),
    "minimum_calls": Cases(_COUNT_GOOD_ENV, _COUNT_BAD_ENV, _COUNT_GOOD_KW, _COUNT_BAD_KW),
    "slow_call_duration": Cases(
        [("2", 2.0), ("0.25", 0.25), (" 10 ", 10.0)],
        ["0", "-1", "nan", "inf", "2s"],
        [(2, 2.0), (0.5, 0.5), (None, None)],
        [0, -0.1, math.nan, math.inf, True, "x"],
    ),
    # Never below recovery_timeout (60 by default): tests/unit/test_breaker_policy.py.
    "recovery_timeout_max": Cases(
        [("600", 600.0), ("60", 60.0), (" 3600 ", 3600.0)],
        ["0", "-1", "nan", "inf", "10m"],
        [(600, 600.0), (60.5, 60.5), (None, None)],
        [0, -1, math.nan, math.inf, True, "x"],
    ),
    "metrics_namespace": Cases(
        [("botocore", "botocore"), ("s3", "s3"), ("my_app:x", "my_app:x"), ("_x", "_x")],
        ["1abc", "my-app", "a.b", "has space", "ns/"],
        [("s3", "s3")],
        ["", 5, None, "9lives"],
    ),
    "metrics_port": Cases(
        [("1", 1), ("9100", 9100), ("65535", 65535), (" 8000 ", 8000)],
        ["0", "65536", "abc", "80.0", "-1", "nan", "inf", "1e3", "99999"],
        [(9100, 9100), (None, None), ("9100", 9100), (65535, 65535)],
        [0, 65536, -1, True, 80.0, 80.5, math.nan, math.inf, "80.0", "abc", "0", "\u0663"],
    ),
    "metrics_addr": Cases(
        [
            ("0.0.0.0", "0.0.0.0"),
            ("127.0.0.1", "127.0.0.1"),
            ("::", "::"),
            ("::1", "::1"),
            ("localhost", "localhost"),
            ("metrics.internal", "metrics.internal"),
            (" 10.0.0.1 ", "10.0.0.1"),
            ("fe80::1%eth0", "fe80::1%eth0"),
            ("host.1a", "host.1a"),  # a last label that is no number: a host name
        ],
        [
            *["not an address", "http://x", "-bad", "a..b", "[::1]", "host_name", "256.1.1.1"],
            # IPv4 in forms inet_aton() takes but a dotted quad is not: rejected, all of them
            *["1.2.3", "127.1", "0x0", "0x7f.0.0.1", "2130706433", "127.000.000.001", "a.0x1"],
        ],
        [("127.0.0.1", "127.0.0.1")],
        [127, None, "", " ", True],
    ),
    # A URL equals its redacted text: the password never shows (tests/unit/test_store_url.py).
    "state_url": Cases(
        [
            ("redis://localhost:6379/0", _url("redis://localhost:6379/0")),
            (
                "rediss://app:s3cret@cache.example.com:6380",
                _url("rediss://app:***@cache.example.com:6380"),
            ),
            ("unix:///run/redis.sock", _url("unix:///run/redis.sock")),
            ("redis://10.0.0.1:7000?cluster=true", _url("redis://10.0.0.1:7000", cluster=True)),
        ],
        [
            "http://localhost",
            "localhost:6379",
            "redis://",
            "redis://h:99999",
            "redis://h?cluster=x",
        ],
        [("redis://localhost", _url("redis://localhost")), (None, None)],
        [6379, True, "valkey://localhost", b"redis://localhost"],
    ),
    "state_timeout": Cases(
        [("0.05", 0.05), ("1", 1.0), (" 0.2 ", 0.2)],
        ["0", "-1", "nan", "inf", "fast"],
        [(0.05, 0.05), (2, 2.0)],
        [0, -0.1, float("nan"), "x", True],
    ),
}


def _rows(kind: str) -> list[Any]:
    """``pytest.param(setting, case)`` for every row of the table and every case of ``kind``."""
    params = []
    for setting in SETTINGS:
        for index, case in enumerate(
            getattr(CASES.get(setting.option, Cases([], [], [], [])), kind)
        ):
            params.append(pytest.param(setting, case, id=f"{setting.option}-{index}-{case!r}"))
    return params


ROWS = [pytest.param(setting, id=setting.option) for setting in SETTINGS]


# -- the table itself ------------------------------------------------------------------------


def test_every_row_has_cases() -> None:
    assert set(CASES) == {setting.option for setting in SETTINGS}
    for option, cases in CASES.items():
        assert cases.good_env, option
        assert cases.bad_env, option
        assert cases.good_kw, option
        assert cases.bad_kw, option


def test_the_table_and_the_dataclass_agree() -> None:
    options = [f.name for f in fields(Settings) if f.name != "sources"]
    assert options == [setting.option for setting in SETTINGS]
    defaults = Settings()
    for setting in SETTINGS:
        assert getattr(defaults, setting.option) == setting.default, setting.option


@pytest.mark.parametrize("setting", ROWS)
def test_env_var_name_is_prefix_and_upper_option(setting: Setting) -> None:
    assert setting.env == ENV_PREFIX + setting.option.upper()
    assert setting.env.startswith("BOTOCORE_RESILIENCE_")


def test_the_contract_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.as_dict() == {
        "enabled": True,
        "name": "",
        "retry_mode": "standard",
        "max_attempts": 4,
        "breaker": "on",
        "scope": "service",
        "failure_threshold": 5,
        "recovery_timeout": 60.0,
        "success_threshold": 2,
        "half_open_max_calls": 1,
        "failure_rate": None,
        "window": 60.0,
        "minimum_calls": 20,
        "slow_call_duration": None,
        "recovery_timeout_max": None,
        "max_circuits": 1000,
        "exempt_operations": "AbortMultipartUpload",
        "metrics": "prometheus",
        "metrics_namespace": "botocore",
        "metrics_port": None,
        "metrics_addr": "0.0.0.0",
        "state_url": None,
        "state_timeout": 0.05,
    }


@pytest.mark.parametrize("setting", ROWS)
def test_default_when_unset(setting: Setting) -> None:
    settings = Settings.from_env({})
    assert getattr(settings, setting.option) == setting.default
    assert settings.source_of(setting.option) == "default"
    assert settings.sources[setting.option] == "default"


@pytest.mark.parametrize("setting", ROWS)
@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_env_var_is_unset(setting: Setting, empty: str) -> None:
    settings = Settings.from_env({setting.env: empty})
    assert getattr(settings, setting.option) == setting.default
    assert settings.source_of(setting.option) == "default"


@pytest.mark.parametrize("setting", ROWS)
def test_other_variables_are_not_read(setting: Setting) -> None:
    lower = setting.env.lower()
    bare = setting.option.upper()
    bad = CASES[setting.option].bad_env[0]
    settings = Settings.from_env({lower: bad, bare: bad})
    assert getattr(settings, setting.option) == setting.default


# -- from the environment -------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "case"), _rows("good_env"))
def test_good_env_value(setting: Setting, case: tuple[str, Any]) -> None:
    raw, expected = case
    settings = Settings.from_env({setting.env: raw})
    assert getattr(settings, setting.option) == expected
    assert type(getattr(settings, setting.option)) is type(expected)
    assert settings.source_of(setting.option) == "environment"


@pytest.mark.parametrize(("setting", "raw"), _rows("bad_env"))
def test_bad_env_value(setting: Setting, raw: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({setting.env: raw})
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.variable == setting.env
    assert error.value == raw
    assert error.accepted
    message = str(error)
    assert setting.env in message
    assert repr(raw) in message
    assert error.accepted in message


# -- from keywords --------------------------------------------------------------------------


@pytest.mark.parametrize(("setting", "case"), _rows("good_kw"))
def test_good_keyword_value(setting: Setting, case: tuple[Any, Any]) -> None:
    raw, expected = case
    settings = Settings.from_env({}, **{setting.option: raw})
    assert getattr(settings, setting.option) == expected
    if expected is not None:
        assert type(getattr(settings, setting.option)) is type(expected)
    assert settings.source_of(setting.option) == "keyword"


@pytest.mark.parametrize(("setting", "raw"), _rows("bad_kw"))
def test_bad_keyword_value(setting: Setting, raw: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({}, **{setting.option: raw})
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.variable == setting.option  # the option name, not the env var
    assert error.value is raw
    message = str(error)
    assert message.startswith(f"{setting.option}={raw!r} ")
    assert setting.env not in message
    assert error.accepted in message


@pytest.mark.parametrize("setting", ROWS)
def test_keyword_beats_environment(setting: Setting) -> None:
    cases = CASES[setting.option]
    env_raw = cases.good_env[0][0]
    keyword_raw, expected = cases.good_kw[-1]
    settings = Settings.from_env({setting.env: env_raw}, **{setting.option: keyword_raw})
    assert getattr(settings, setting.option) == expected
    assert settings.source_of(setting.option) == "keyword"


@pytest.mark.parametrize("setting", ROWS)
def test_keyword_wins_over_a_bad_environment_value(setting: Setting) -> None:
    # The environment value is never used, so it is never judged.
    cases = CASES[setting.option]
    keyword_raw, expected = cases.good_kw[0]
    settings = Settings.from_env({setting.env: cases.bad_env[0]}, **{setting.option: keyword_raw})
    assert getattr(settings, setting.option) == expected


def test_sources_mix() -> None:
    settings = Settings.from_env(
        {"BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "3", "BOTOCORE_RESILIENCE_SCOPE": "operation"},
        scope="bucket",
    )
    assert settings.failure_threshold == 3
    assert settings.scope == "bucket"
    assert settings.source_of("failure_threshold") == "environment"
    assert settings.source_of("scope") == "keyword"
    assert settings.source_of("recovery_timeout") == "default"
    assert set(settings.sources) == {setting.option for setting in SETTINGS}


def test_sources_do_not_affect_equality() -> None:
    assert Settings.from_env({"BOTOCORE_RESILIENCE_SCOPE": "bucket"}) == Settings.from_env(
        {}, scope="bucket"
    )


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.failure_threshold = 3  # type: ignore[misc]


def test_unknown_keyword() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({}, failure_treshold=3)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.variable == "failure_treshold"
    assert error.value == 3
    assert "failure_threshold" in error.accepted  # says what the keywords are
    assert "failure_treshold=3" in str(error)


@pytest.mark.parametrize("option", ["registry", "clock", "jitter", "sources", "ENABLED"])
def test_non_settings_are_unknown_keywords(option: str) -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({}, **{option: "x"})


def test_the_first_bad_value_is_reported() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(
            {"BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "0", "BOTOCORE_RESILIENCE_SCOPE": "x"}
        )
    assert caught.value.variable in {
        "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD",
        "BOTOCORE_RESILIENCE_SCOPE",
    }


def test_the_error_message_example() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "0"})
    assert str(caught.value) == (
        "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD='0' is not valid: "
        "expected an integer from 1 to 1000000000"
    )


def test_the_error_is_a_botocore_error_and_not_a_retryable_one() -> None:
    from botocore.exceptions import BotoCoreError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    error = ConfigurationError(variable="X", value="y", accepted="z")
    assert isinstance(error, BotoCoreError)
    assert isinstance(error, ValueError)
    assert not isinstance(error, (BotoConnectionError, HTTPClientError))
    assert botocore_resilience.ConfigurationError is ConfigurationError


def test_from_env_does_not_mutate_its_inputs() -> None:
    environ = {"BOTOCORE_RESILIENCE_SCOPE": "bucket"}
    overrides = {"failure_threshold": 3}
    Settings.from_env(environ, **overrides)
    assert environ == {"BOTOCORE_RESILIENCE_SCOPE": "bucket"}
    assert overrides == {"failure_threshold": 3}


# -- install() validates before touching anything --------------------------------------------


def _our_handlers(events: Any) -> list[Any]:
    emitter = getattr(events, "_emitter", events)
    return [
        handler
        for handler in emitter._handlers.prefix_search("before-call.s3.GetObject")
        if isinstance(getattr(handler, "__self__", None), EventHandlers)
    ]


@pytest.mark.parametrize("setting", ROWS)
def test_install_with_a_bad_env_value_raises_before_registering(setting: Setting) -> None:
    session = botocore.session.Session()
    previous = Config(connect_timeout=7)
    session.set_default_client_config(previous)
    registry = CollectorRegistry()
    environ = {setting.env: CASES[setting.option].bad_env[0]}
    with pytest.raises(ConfigurationError) as caught:
        botocore_resilience.install(session, registry=registry, environ=environ)
    assert caught.value.variable == setting.env
    assert _our_handlers(session.get_component("event_emitter")) == []
    assert session.get_default_client_config() is previous
    assert list(registry.collect()) == []
    assert installation_of(session) is None


@pytest.mark.parametrize("setting", ROWS)
def test_install_with_a_bad_keyword_raises_before_registering(setting: Setting) -> None:
    session = botocore.session.Session()
    registry = CollectorRegistry()
    bad = CASES[setting.option].bad_kw[0]
    with pytest.raises(ConfigurationError) as caught:
        botocore_resilience.install(session, registry=registry, environ={}, **{setting.option: bad})
    assert caught.value.variable == setting.option
    assert _our_handlers(session.get_component("event_emitter")) == []
    assert session.get_default_client_config() is None
    assert list(registry.collect()) == []


def test_install_with_an_unknown_keyword_raises_before_registering() -> None:
    session = botocore.session.Session()
    with pytest.raises(ConfigurationError):
        botocore_resilience.install(
            session, registry=CollectorRegistry(), environ={}, failure_treshold=3
        )
    assert _our_handlers(session.get_component("event_emitter")) == []
    assert session.get_default_client_config() is None


def test_install_reads_the_environ_it_is_given() -> None:
    session = botocore.session.Session()
    installation = botocore_resilience.install(
        session,
        registry=CollectorRegistry(),
        environ={"BOTOCORE_RESILIENCE_FAILURE_THRESHOLD": "9"},
        scope="operation",
    )
    try:
        assert installation.settings.failure_threshold == 9
        assert installation.settings.source_of("failure_threshold") == "environment"
        assert installation.settings.scope == "operation"
    finally:
        installation.uninstall()


def test_unknown_variables_are_reported_as_likely_typos() -> None:
    from botocore_resilience.config import unknown_variables

    environ = {
        "BOTOCORE_RESILIENCE_FAILURE_TRESHOLD": "3",
        "BOTOCORE_RESILIENCE_SCOPE": "bucket",
        "AWS_REGION": "us-east-1",
    }
    assert unknown_variables(environ) == ["BOTOCORE_RESILIENCE_FAILURE_TRESHOLD"]


def test_unknown_variable_warnings_name_the_setting_meant() -> None:
    from botocore_resilience.config import unknown_variable_warnings

    environ = {
        "BOTOCORE_RESILIENCE_FAILURE_TRESHOLD": "3",
        "BOTOCORE_RESILIANCE_SCOPE": "bucket",  # the prefix misspelt
        "BOTOCORE_RESILIENCE_XYZZY": "1",
        "BOTOCORE_EXPERIMENTAL__PLUGINS": "x",  # botocore's own: not ours, not a typo
        "BOTOCORE_RESILIENCE_SCOPE": "bucket",
    }
    assert unknown_variable_warnings(environ) == [
        "ignoring unknown setting BOTOCORE_RESILIANCE_SCOPE "
        "(did you mean BOTOCORE_RESILIENCE_SCOPE?)",
        "ignoring unknown setting BOTOCORE_RESILIENCE_FAILURE_TRESHOLD "
        "(did you mean BOTOCORE_RESILIENCE_FAILURE_THRESHOLD?)",
        "ignoring unknown setting BOTOCORE_RESILIENCE_XYZZY (a typo?)",
    ]


# -- one rule for every number ---------------------------------------------------------------

_NUMERIC = [s for s in SETTINGS if s.option in CASES and isinstance(s.default, (int, float))]
_NUMERIC = [s for s in _NUMERIC if not isinstance(s.default, bool)] + [
    s for s in SETTINGS if s.option == "metrics_port"
]


@pytest.mark.parametrize("setting", [pytest.param(s, id=s.option) for s in _NUMERIC])
@pytest.mark.parametrize(
    "raw",
    ["\u0663", "\uff15", "1_000", "\u0661\u0660", " 1_0 ", "nan", "inf", "0x10", "\u0967"],
)
def test_every_number_is_written_in_ascii_digits(setting: Setting, raw: str) -> None:
    # Python's int() and float() take all of these but "0x10"; no setting does.
    for given in ({setting.env: raw}, {}):
        with pytest.raises(ConfigurationError):
            Settings.from_env(given, **({} if given else {setting.option: raw}))


@pytest.mark.parametrize("setting", [pytest.param(s, id=s.option) for s in _NUMERIC])
@pytest.mark.parametrize("huge", [10**30, 10**400, -(10**400)])
def test_a_huge_number_is_a_configuration_error(setting: Setting, huge: int) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({}, **{setting.option: huge})
    assert caught.value.value is huge
    with pytest.raises(ConfigurationError):
        Settings.from_env({setting.env: str(huge)})


def test_install_with_a_huge_keyword_raises_configuration_error_not_overflow() -> None:
    session = botocore.session.Session()
    with pytest.raises(ConfigurationError):
        botocore_resilience.install(
            session, registry=CollectorRegistry(), environ={}, failure_threshold=10**400
        )
    with pytest.raises(ConfigurationError):
        botocore_resilience.install(
            session, registry=CollectorRegistry(), environ={}, recovery_timeout=10**400
        )


def test_mode_settings_are_literal_types_with_the_accepted_words() -> None:
    from typing import get_args, get_type_hints

    hints = get_type_hints(Settings)
    for option, accepted in {
        "retry_mode": ("adaptive", "standard", "legacy"),
        "breaker": ("on", "off", "metrics-only"),
        "scope": ("service", "operation", "bucket"),
    }.items():
        assert get_args(hints[option]) == accepted
        for word in accepted:
            assert getattr(Settings.from_env({}, **{option: word.upper()}), option) == word


def test_each_default_is_written_once() -> None:
    from botocore_resilience.breaker import BreakerPolicy
    from botocore_resilience.circuits import DEFAULT_MAX_CIRCUITS

    defaults = Settings()
    policy = BreakerPolicy()
    for option in ("failure_threshold", "recovery_timeout", "success_threshold"):
        assert getattr(policy, option) == getattr(defaults, option), option
    assert policy.half_open_max_calls == defaults.half_open_max_calls
    assert defaults.max_circuits == DEFAULT_MAX_CIRCUITS


def test_config_and_metrics_share_one_namespace_check() -> None:
    from botocore_resilience import config, metrics

    assert metrics.is_valid_namespace is config.is_valid_namespace
    assert Settings().max_circuits == metrics.DEFAULT_MAX_BUCKETS
