"""Retries: the gap filler's decisions and backoff, and retry defaults on real botocore sessions.

No client here is ever called: they are created (dummy credentials, a closed port) only to
read the retry configuration botocore computed for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.retries.standard import RetryContext

from botocore_resilience.retries import (
    GapFiller,
    apply_retry_defaults,
    client_config_with_defaults,
    max_attempts_of,
    missing_retry_settings,
    restore_retry_defaults,
)

OURS = {"mode": "adaptive", "total_max_attempts": 4}


@pytest.fixture(autouse=True)
def isolated_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing from this machine's AWS configuration reaches botocore in these tests."""
    for name in (
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    config_file = tmp_path / "config"
    config_file.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return config_file


_LOADER = botocore.session.Session().get_component("data_loader")


def new_session(**kwargs: Any) -> botocore.session.Session:
    """A fresh botocore session that shares one (caching) data loader: the same models,
    parsed once, so creating clients stays fast."""
    session = botocore.session.Session(**kwargs)
    session.register_component("data_loader", _LOADER)
    return session


def new_client(session: Any, config: Optional[Config] = None) -> Any:
    return session.create_client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        endpoint_url="http://127.0.0.1:9",
        config=config,
    )


# -- the gap filler -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def operation_model() -> Any:
    return new_session().get_service_model("s3").operation_model("GetObject")


def context_factory(
    operation_model: Any,
    status: Optional[int] = None,
    code: Optional[str] = None,
    exception: Optional[BaseException] = None,
    attempt: int = 1,
) -> Callable[[], RetryContext]:
    def build() -> RetryContext:
        http = parsed = None
        if status is not None:
            http = AWSResponse("https://b.s3.amazonaws.com/k", status, {}, None)
            parsed = {"ResponseMetadata": {"HTTPStatusCode": status}}
            if code is not None:
                parsed["Error"] = {"Code": code, "Message": "m"}
        return RetryContext(
            attempt_number=attempt,
            operation_model=operation_model,
            parsed_response=parsed,
            http_response=http,
            caught_exception=exception,
            request_context={},
        )

    return build


def never_called() -> RetryContext:
    raise AssertionError("the retry context was built for an attempt that needs none")


def delay(
    filler: GapFiller,
    operation_model: Any,
    status: Optional[int] = None,
    code: Optional[str] = None,
    exception: Optional[BaseException] = None,
    attempt: int = 1,
    max_attempts: int = 4,
) -> Optional[float]:
    return filler.delay(
        attempt=attempt,
        max_attempts=max_attempts,
        status=status,
        code=code,
        exception=exception,
        retry_context=context_factory(operation_model, status, code, exception, attempt),
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "SlowDown"),
        (503, None),
        (500, "InternalError"),
        (502, None),
        (504, None),
        (400, "Throttling"),
        (400, "RequestTimeout"),
        (400, "ThrottlingException"),
        (429, "TooManyRequestsException"),
    ],
)
def test_no_delay_where_botocore_retries(
    operation_model: Any, status: int, code: Optional[str]
) -> None:
    filler = GapFiller(lambda: 0.5)
    for attempt in (1, 2, 3):
        assert delay(filler, operation_model, status, code, attempt=attempt) is None


@pytest.mark.parametrize(
    "exception",
    [
        EndpointConnectionError(endpoint_url="http://x"),
        ConnectTimeoutError(endpoint_url="http://x"),
        ReadTimeoutError(endpoint_url="http://x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_no_delay_for_connection_errors_botocore_retries(
    operation_model: Any, exception: BaseException
) -> None:
    assert delay(GapFiller(lambda: 0.5), operation_model, exception=exception) is None


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, "NoSuchKey"), (403, "AccessDenied"), (400, "MalformedXML"), (409, None), (400, None)],
)
def test_no_delay_for_client_errors(operation_model: Any, status: int, code: Optional[str]) -> None:
    filler = GapFiller(lambda: 0.5)
    result = filler.delay(
        attempt=1,
        max_attempts=4,
        status=status,
        code=code,
        exception=None,
        retry_context=never_called,
    )
    assert result is None


@pytest.mark.parametrize("status", [200, 204, 206, 301, 304])
def test_no_delay_for_success(status: int) -> None:
    filler = GapFiller(lambda: 0.5)
    result = filler.delay(
        attempt=1,
        max_attempts=4,
        status=status,
        code=None,
        exception=None,
        retry_context=never_called,
    )
    assert result is None


def test_no_delay_for_local_errors() -> None:
    filler = GapFiller(lambda: 0.5)
    result = filler.delay(
        attempt=1,
        max_attempts=4,
        status=None,
        code=None,
        exception=NoCredentialsError(),
        retry_context=never_called,
    )
    assert result is None


@pytest.mark.parametrize(("status", "code"), [(408, "ClientTimeout"), (408, None)])
def test_a_delay_for_bare_408(operation_model: Any, status: int, code: Optional[str]) -> None:
    filler = GapFiller(lambda: 0.5)
    for attempt in (1, 2, 3):
        assert delay(filler, operation_model, status, code, attempt=attempt) is not None


@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequests"), (429, None)])
def test_a_delay_for_bare_429_only_where_botocore_has_the_gap(
    operation_model: Any, status: int, code: Optional[str]
) -> None:
    # botocore 1.44 retries a bare 429 itself: then its handler decides (retry, or not for
    # its quota), and we must stay silent.
    from botocore.retries.standard import StandardRetryConditions

    itself = StandardRetryConditions(max_attempts=10).is_retryable(
        context_factory(operation_model, status, code)()
    )
    filler = GapFiller(lambda: 0.5)
    for attempt in (1, 2, 3):
        made = delay(filler, operation_model, status, code, attempt=attempt)
        assert (made is not None) == (not itself)


@pytest.mark.parametrize(("attempt", "max_attempts"), [(4, 4), (5, 4), (1, 1), (3, 3), (10, 2)])
def test_no_delay_at_max_attempts(attempt: int, max_attempts: int) -> None:
    filler = GapFiller(lambda: 0.5)
    result = filler.delay(
        attempt=attempt,
        max_attempts=max_attempts,
        status=429,
        code="TooManyRequests",
        exception=None,
        retry_context=never_called,
    )
    assert result is None


def test_the_last_retry_before_max_attempts_is_made(operation_model: Any) -> None:
    assert delay(GapFiller(lambda: 0.5), operation_model, 408, attempt=3, max_attempts=4) == 2.0


@pytest.mark.parametrize("jitter", [0.0, 0.25, 0.5, 0.999])
def test_backoff_shape(operation_model: Any, jitter: float) -> None:
    filler = GapFiller(lambda: jitter)
    expected = [jitter * min(2 ** (attempt - 1), 20) for attempt in range(1, 10)]
    got = [
        delay(filler, operation_model, 408, "ClientTimeout", attempt=attempt, max_attempts=99)
        for attempt in range(1, 10)
    ]
    assert got == pytest.approx(expected)
    assert max(g for g in got if g is not None) <= 20


def test_zero_jitter_is_a_zero_delay_not_no_retry(operation_model: Any) -> None:
    result = delay(GapFiller(lambda: 0.0), operation_model, 408, "ClientTimeout")
    assert result == 0.0
    assert result is not None  # botocore's first-non-None rule: 0 means "retry now"


def test_the_default_jitter_is_random_and_bounded(operation_model: Any) -> None:
    filler = GapFiller()
    results = [delay(filler, operation_model, 408, attempt=3) for _ in range(50)]
    assert all(r is not None and 0 <= r < 4 for r in results)
    assert len(set(results)) > 1


# -- max_attempts_of ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retries", "expected"),
    [
        (None, 3),
        ({}, 3),
        ({"mode": "standard"}, 3),
        ({"total_max_attempts": 4}, 4),
        ({"total_max_attempts": 1}, 1),
        ({"max_attempts": 2}, 3),  # Config(retries={"max_attempts": n}) counts retries
        ({"max_attempts": 0}, 1),
        ({"max_attempts": 9, "total_max_attempts": 5}, 5),
    ],
)
def test_max_attempts_of(retries: Optional[dict[str, Any]], expected: int) -> None:
    assert max_attempts_of(Config(retries=retries)) == expected


def test_max_attempts_of_anything_without_retries() -> None:
    assert max_attempts_of(None) == 3
    assert max_attempts_of(object()) == 3


def test_max_attempts_of_a_real_client() -> None:
    session = new_session()
    assert max_attempts_of(new_client(session).meta.config) == 3  # botocore's legacy default
    session.set_default_client_config(Config(retries={"total_max_attempts": 6}))
    assert max_attempts_of(new_client(session).meta.config) == 6
    client = new_client(session, Config(retries={"max_attempts": 1}))
    assert max_attempts_of(client.meta.config) == 2


# -- apply_retry_defaults / restore_retry_defaults on real sessions --------------------------


def botocore_default_retries() -> dict[str, Any]:
    """A client's retries config when nobody chose anything: botocore's own default, which
    changed from legacy to standard mode in botocore 1.44."""
    return dict(new_client(new_session()).meta.config.retries)


def test_botocore_default_is_not_ours() -> None:
    # The premise of the tests below: without us, a client is on botocore's default mode
    # (legacy before botocore 1.44, standard since), never adaptive, with no attempts set.
    assert botocore_default_retries() in ({"mode": "legacy"}, {"mode": "standard"})


def test_applied_when_nothing_is_set() -> None:
    session = new_session()
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    assert dict(defaults.applied) == OURS
    assert defaults.previous is None
    assert session.get_default_client_config().retries == OURS
    retries = new_client(session).meta.config.retries
    assert retries["mode"] == "adaptive"
    assert retries["total_max_attempts"] == 4


def test_applies_the_values_it_is_given() -> None:
    session = new_session()
    apply_retry_defaults(session, "standard", 2, {})
    assert new_client(session).meta.config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_restore_removes_what_was_applied() -> None:
    session = new_session()
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    restore_retry_defaults(session, defaults)
    assert session.get_default_client_config() is None
    assert new_client(session).meta.config.retries == botocore_default_retries()


@pytest.mark.parametrize(
    ("environ", "applied"),
    [
        ({"AWS_RETRY_MODE": "standard"}, {"total_max_attempts": 4}),
        ({"AWS_MAX_ATTEMPTS": "7"}, {"mode": "adaptive"}),
        ({"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "7"}, {}),
        ({"AWS_RETRY_MODE": ""}, OURS),  # empty is unset
        ({"OTHER": "x"}, OURS),
    ],
)
def test_not_applied_over_aws_environment_variables(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], applied: dict[str, Any]
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)  # so that botocore sees them too
    session = new_session()
    defaults = apply_retry_defaults(session, "adaptive", 4, environ)
    assert dict(defaults.applied) == applied
    retries = new_client(session).meta.config.retries
    assert retries["mode"] == (environ.get("AWS_RETRY_MODE") or "adaptive")
    assert retries["total_max_attempts"] == int(environ.get("AWS_MAX_ATTEMPTS") or 4)


def test_the_environ_passed_is_what_counts() -> None:
    # AWS_RETRY_MODE in the mapping given, whatever os.environ holds.
    session = new_session()
    defaults = apply_retry_defaults(session, "adaptive", 4, {"AWS_RETRY_MODE": "legacy"})
    assert dict(defaults.applied) == {"total_max_attempts": 4}


@pytest.mark.parametrize(
    ("profile_lines", "applied", "mode", "total"),
    [
        (["retry_mode = standard"], {"total_max_attempts": 4}, "standard", 4),
        (["max_attempts = 7"], {"mode": "adaptive"}, "adaptive", 7),
        (["retry_mode = standard", "max_attempts = 7"], {}, "standard", 7),
        (["region = eu-west-1"], OURS, "adaptive", 4),
    ],
)
def test_not_applied_over_the_profile(
    isolated_aws_config: Path,
    profile_lines: list[str],
    applied: dict[str, Any],
    mode: str,
    total: int,
) -> None:
    isolated_aws_config.write_text("[default]\n" + "\n".join(profile_lines) + "\n")
    session = new_session()  # created after the file is in place
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    assert dict(defaults.applied) == applied
    retries = new_client(session).meta.config.retries
    assert retries == {"mode": mode, "total_max_attempts": total}


def test_not_applied_over_a_named_profile(isolated_aws_config: Path) -> None:
    isolated_aws_config.write_text(
        "[default]\n\n[profile batch]\nretry_mode = standard\nmax_attempts = 10\n"
    )
    session = new_session(profile="batch")
    assert dict(apply_retry_defaults(session, "adaptive", 4, {}).applied) == {}
    retries = new_client(session).meta.config.retries
    assert retries == {"mode": "standard", "total_max_attempts": 10}
    # ...while the default profile, which sets nothing, gets ours.
    other = new_session()
    assert dict(apply_retry_defaults(other, "adaptive", 4, {}).applied) == OURS


def test_a_missing_profile_does_not_break_apply() -> None:
    session = new_session(profile="does-not-exist")
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    assert dict(defaults.applied) == OURS


@pytest.mark.parametrize(
    ("variable", "value", "applied", "expected"),
    [
        ("retry_mode", "standard", {"total_max_attempts": 4}, {"mode": "standard"}),
        ("max_attempts", 7, {"mode": "adaptive"}, {"total_max_attempts": 7}),
    ],
)
def test_not_applied_over_a_session_instance_variable(
    variable: str, value: Any, applied: dict[str, Any], expected: dict[str, Any]
) -> None:
    session = new_session()
    session.set_config_variable(variable, value)
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    assert dict(defaults.applied) == applied
    retries = new_client(session).meta.config.retries
    for key, wanted in expected.items():
        assert retries[key] == wanted
    assert retries == {**OURS, **expected}


@pytest.mark.parametrize(
    ("existing", "applied", "client_retries"),
    [
        (
            {"mode": "standard"},
            {"total_max_attempts": 4},
            {"mode": "standard", "total_max_attempts": 4},
        ),
        (
            {"total_max_attempts": 2},
            {"mode": "adaptive"},
            {"mode": "adaptive", "total_max_attempts": 2},
        ),
        ({"max_attempts": 1}, {"mode": "adaptive"}, {"mode": "adaptive", "total_max_attempts": 2}),
        (
            {"mode": "legacy", "total_max_attempts": 9},
            {},
            {"mode": "legacy", "total_max_attempts": 9},
        ),
    ],
)
def test_not_applied_over_a_default_client_config_with_retries(
    existing: dict[str, Any], applied: dict[str, Any], client_retries: dict[str, Any]
) -> None:
    session = new_session()
    previous = Config(connect_timeout=7, retries=dict(existing))
    session.set_default_client_config(previous)
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    assert dict(defaults.applied) == applied
    client = new_client(session)
    assert client.meta.config.retries == client_retries
    assert client.meta.config.connect_timeout == 7
    assert previous.retries == existing  # the user's object is not modified
    restore_retry_defaults(session, defaults)
    assert session.get_default_client_config() is previous


def test_other_options_of_an_existing_default_client_config_are_kept() -> None:
    session = new_session()
    previous = Config(connect_timeout=3, read_timeout=9, max_pool_connections=33)
    session.set_default_client_config(previous)
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    assert dict(defaults.applied) == OURS
    config = new_client(session).meta.config
    assert (config.connect_timeout, config.read_timeout, config.max_pool_connections) == (3, 9, 33)
    assert config.retries == OURS
    assert previous.retries is None  # merged into a new object, not modified in place
    restore_retry_defaults(session, defaults)
    assert session.get_default_client_config() is previous


def test_a_user_set_standard_survives_a_client_config() -> None:
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4, {})
    client = new_client(session, Config(retries={"mode": "standard"}))
    assert client.meta.config.retries["mode"] == "standard"
    # A client Config without retries gets ours.
    other = new_client(session, Config(connect_timeout=5))
    assert other.meta.config.retries == OURS
    assert other.meta.config.connect_timeout == 5


def test_apply_twice_then_restore_each() -> None:
    session = new_session()
    first = apply_retry_defaults(session, "adaptive", 4, {})
    restore_retry_defaults(session, first)
    second = apply_retry_defaults(session, "standard", 6, {})
    assert new_client(session).meta.config.retries == {"mode": "standard", "total_max_attempts": 6}
    restore_retry_defaults(session, second)
    assert session.get_default_client_config() is None


def test_restore_is_a_no_op_when_nothing_was_applied() -> None:
    session = new_session()
    previous = Config(retries={"mode": "standard", "total_max_attempts": 2})
    session.set_default_client_config(previous)
    defaults = apply_retry_defaults(session, "adaptive", 4, {})
    assert dict(defaults.applied) == {}
    later = Config(connect_timeout=1)
    session.set_default_client_config(later)  # the user changed it since
    restore_retry_defaults(session, defaults)
    assert session.get_default_client_config() is later


def test_missing_retry_settings() -> None:
    session = new_session()
    assert missing_retry_settings(session, {}, "adaptive", 4, {}) == OURS
    assert missing_retry_settings(session, {"mode": "legacy"}, "adaptive", 4, {}) == {
        "total_max_attempts": 4
    }
    assert missing_retry_settings(session, {"max_attempts": 3}, "adaptive", 4, {}) == {
        "mode": "adaptive"
    }


# -- client_config_with_defaults (where we see client creation, not the session) -------------


def test_client_config_with_defaults_when_nothing_is_set() -> None:
    session = new_session()
    config = client_config_with_defaults(session, None, "adaptive", 4, {})
    assert config is not None
    assert config.retries == OURS
    assert new_client(session, config).meta.config.retries == OURS


def test_client_config_with_defaults_keeps_what_a_config_sets_and_fills_the_rest() -> None:
    # Each key on its own: the user chose the mode, not the attempts.
    session = new_session()
    mine = Config(retries={"mode": "standard"})
    config = client_config_with_defaults(session, mine, "adaptive", 4, {})
    assert config is not None
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert mine.retries == {"mode": "standard"}
    counted = Config(retries={"max_attempts": 2})  # botocore: 2 retries, i.e. 3 attempts
    config = client_config_with_defaults(session, counted, "adaptive", 4, {})
    assert config is not None
    assert config.retries == {"max_attempts": 2, "mode": "adaptive"}


def test_client_config_with_defaults_keeps_a_config_that_sets_both() -> None:
    session = new_session()
    mine = Config(retries={"mode": "standard", "total_max_attempts": 2})
    assert client_config_with_defaults(session, mine, "adaptive", 4, {}) is mine


def test_client_config_with_defaults_merges_into_a_config_without_retries() -> None:
    session = new_session()
    mine = Config(connect_timeout=5, region_name="eu-west-1")
    config = client_config_with_defaults(session, mine, "adaptive", 4, {})
    assert config is not None
    assert config.retries == OURS
    assert config.connect_timeout == 5
    assert config.region_name == "eu-west-1"
    assert mine.retries is None


def test_client_config_with_defaults_respects_the_session_and_environment(
    isolated_aws_config: Path,
) -> None:
    session = new_session()
    session.set_default_client_config(Config(retries={"mode": "standard"}))
    config = client_config_with_defaults(session, None, "adaptive", 4, {})
    assert config is not None
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}

    environ = {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "2"}
    plain = new_session()
    assert client_config_with_defaults(plain, None, "adaptive", 4, environ) is None
    mine = Config(connect_timeout=1)
    assert client_config_with_defaults(plain, mine, "adaptive", 4, environ) is mine

    isolated_aws_config.write_text("[default]\nmax_attempts = 8\n")
    profiled = new_session()
    config = client_config_with_defaults(profiled, None, "adaptive", 4, {})
    assert config is not None
    assert config.retries == {"mode": "adaptive"}
    assert new_client(profiled, config).meta.config.retries == {
        "mode": "adaptive",
        "total_max_attempts": 8,
    }
