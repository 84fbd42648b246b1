"""Retries: the gap filler's decisions and waits, and retry defaults on real botocore sessions.

No client here is ever called: they are created (dummy credentials, a closed port) only to
read the retry configuration botocore computed for them, or the retry handler it registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import botocore.session
import pytest
from botocore import configprovider
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError, NoCredentialsError, ReadTimeoutError
from botocore.retries import standard
from botocore.retries.standard import RetryContext

from botocore_resilience.retries import (
    GapFiller,
    RetrySettings,
    apply_retry_defaults,
    apply_shared_retry_defaults,
    max_attempts_of,
    restore_retry_defaults,
)

OURS = {"mode": "adaptive", "total_max_attempts": 4}
NEW_RETRIES = bool(getattr(configprovider, "NEW_RETRIES_ENABLED", False))
"""botocore's 2026 retry behaviour: always on since 1.44, behind AWS_NEW_RETRIES_2026 in 1.43."""


@pytest.fixture(autouse=True)
def isolated_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing from this machine's AWS configuration reaches botocore in these tests."""
    for name in (
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
        "AWS_DEFAULTS_MODE",
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
    """A fresh botocore session sharing one (caching) data loader: models parsed once."""
    session = botocore.session.Session(**kwargs)
    session.register_component("data_loader", _LOADER)
    return session


def new_client(session: Any, config: Optional[Config] = None, service: str = "s3") -> Any:
    return session.create_client(
        service,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        endpoint_url="http://127.0.0.1:9",
        config=config,
    )


_LOADER_SESSION = new_session()

# -- the gap filler ---------------------------------------------------------------------------


_client_configs: dict[tuple[Any, ...], Any] = {}


def client_config(retries: dict[str, Any], service: str = "s3") -> Any:
    """The resolved config of a real client (what botocore puts in the request context)."""
    key = (service, *sorted(retries.items()))
    if key not in _client_configs:
        made = new_client(new_session(), Config(retries=dict(retries)), service)
        _client_configs[key] = made.meta.config
    return _client_configs[key]


ADAPTIVE = {"mode": "adaptive", "total_max_attempts": 4}


def context(
    status: Optional[int] = None,
    code: Optional[str] = None,
    exception: Optional[BaseException] = None,
    attempt: int = 1,
    retries: Optional[dict[str, Any]] = None,
    headers: Optional[dict[str, str]] = None,
    service: str = "s3",
    operation: str = "GetObject",
    request_context: Optional[dict[str, Any]] = None,
) -> RetryContext:
    http = parsed = None
    if status is not None:
        http = AWSResponse("https://b.s3.amazonaws.com/k", status, headers or {}, None)
        parsed = {"ResponseMetadata": {"HTTPStatusCode": status}}
        if code is not None:
            parsed["Error"] = {"Code": code, "Message": "m"}
    if request_context is None:
        request_context = {"client_config": client_config(retries or ADAPTIVE, service)}
    return RetryContext(
        attempt_number=attempt,
        operation_model=_LOADER_SESSION.get_service_model(service).operation_model(operation),
        parsed_response=parsed,
        http_response=http,
        caught_exception=exception,
        request_context=request_context,
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
def test_no_delay_where_botocore_retries(status: int, code: Optional[str]) -> None:
    filler = GapFiller(lambda: 0.5)
    for attempt in (1, 2, 3):
        assert filler.delay(context(status, code, attempt=attempt)) is None


@pytest.mark.parametrize(
    "exception",
    [EndpointConnectionError(endpoint_url="http://x"), ReadTimeoutError(endpoint_url="http://x")],
    ids=lambda e: type(e).__name__,
)
def test_no_delay_for_connection_errors_botocore_retries(exception: BaseException) -> None:
    assert GapFiller(lambda: 0.5).delay(context(exception=exception)) is None


@pytest.mark.parametrize(
    ("status", "code"),
    [(404, "NoSuchKey"), (403, "AccessDenied"), (400, "MalformedXML"), (409, None), (200, None)],
)
def test_no_delay_where_the_service_answered(status: int, code: Optional[str]) -> None:
    assert GapFiller(lambda: 0.5).delay(context(status, code)) is None


def test_no_delay_for_local_errors() -> None:
    assert GapFiller(lambda: 0.5).delay(context(exception=NoCredentialsError())) is None


@pytest.mark.parametrize(("status", "code"), [(408, "ClientTimeout"), (408, None)])
def test_a_delay_for_a_bare_408(status: int, code: Optional[str]) -> None:
    filler = GapFiller(lambda: 0.5)
    for attempt in (1, 2, 3):
        assert filler.delay(context(status, code, attempt=attempt)) is not None


@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequests"), (429, None)])
def test_a_delay_for_a_bare_429_only_where_botocore_has_the_gap(
    status: int, code: Optional[str]
) -> None:
    # botocore 1.44 retries a bare 429 itself: then its handler decides (retry, or not for
    # its quota), and we must stay silent.
    itself = standard.StandardRetryConditions(max_attempts=10).is_retryable(context(status, code))
    made = GapFiller(lambda: 0.5).delay(context(status, code))
    assert (made is not None) == (not itself)


def test_no_delay_for_a_429_with_a_modeled_error_code() -> None:
    # Issue 10, item 3: CodeCommit's InvalidOrderException on a 429. botocore classified it
    # (modeled, not retryable) and declines; a gap retry would override that.
    declined = context(
        429, "InvalidOrderException", service="codecommit", operation="ListRepositories"
    )
    assert GapFiller(lambda: 0.5).delay(declined) is None
    bare = context(429, None, service="codecommit", operation="ListRepositories")
    expected_gap = not standard.StandardRetryConditions(max_attempts=10).is_retryable(bare)
    assert (GapFiller(lambda: 0.5).delay(bare) is not None) == expected_gap


@pytest.mark.parametrize(
    ("attempt", "retries"),
    [
        (4, ADAPTIVE),
        (5, ADAPTIVE),
        (1, {"mode": "standard", "total_max_attempts": 1}),
        (3, {"mode": "standard", "max_attempts": 2}),  # Config's max_attempts counts retries
        (3, {"mode": "standard"}),  # botocore's default: 3 attempts for S3
    ],
)
def test_no_delay_at_the_clients_max_attempts(attempt: int, retries: dict[str, Any]) -> None:
    assert GapFiller(lambda: 0.5).delay(context(408, attempt=attempt, retries=retries)) is None


def test_the_last_retry_before_max_attempts_is_made() -> None:
    assert GapFiller(lambda: 0.5).delay(context(408, attempt=3)) is not None


def test_legacy_mode_is_left_to_botocore() -> None:
    # Legacy mode has its own table (it retries a bare 429 but not a 408): we add nothing.
    legacy = context(408, retries={"mode": "legacy", "total_max_attempts": 4})
    assert GapFiller(lambda: 0.5).delay(legacy) is None


def test_no_delay_without_a_client_config() -> None:
    assert GapFiller(lambda: 0.5).delay(context(408, request_context={})) is None


def test_no_delay_without_an_operation() -> None:
    anonymous = context(408)
    anonymous.operation_model = None
    assert GapFiller(lambda: 0.5).delay(anonymous) is None


# -- the wait: botocore's own backoff ----------------------------------------------------------


def botocore_backoff(service: str, jitter: float) -> Any:
    """The backoff botocore's own standard-mode handler uses for a ``service`` client, on this
    botocore, with a fixed jitter (read out of the handler botocore registers)."""
    client = new_client(new_session(), Config(retries={"mode": "standard"}), service)
    handler = standard.register_retry_handler(client, max_attempts=99)
    backoff = handler._retry_policy._retry_backoff
    backoff._random = lambda: jitter
    return backoff


WAITS = [
    ("s3", 408, "ClientTimeout", {}),
    ("s3", 408, None, {}),
    ("s3", 408, None, {"x-amz-retry-after": "1500"}),
    ("s3", 408, None, {"x-amz-retry-after": "90000"}),  # capped: at most 5 s more
    ("s3", 408, None, {"x-amz-retry-after": "junk"}),
    ("s3", 429, "TooManyRequests", {}),
    ("dynamodb", 408, None, {}),
]


@pytest.mark.parametrize(("service", "status", "code", "headers"), WAITS)
@pytest.mark.parametrize("jitter", [0.0, 0.3, 0.999])
def test_the_wait_is_exactly_botocores(
    service: str, status: int, code: Optional[str], headers: dict[str, str], jitter: float
) -> None:
    # Issue 11: whatever botocore's backoff is on this version (1.31's 1 s base; the 2026
    # behaviour's 50 ms / 25 ms DynamoDB / 1 s throttling bases, x-amz-retry-after), a retry
    # we add waits what botocore's own handler would compute for the same attempt.
    filler = GapFiller(lambda: jitter)
    for attempt in range(1, 8):
        attempt_context = context(
            status,
            code,
            attempt=attempt,
            headers=headers,
            service=service,
            operation="GetItem" if service == "dynamodb" else "GetObject",
            retries={"mode": "standard", "total_max_attempts": 99},
        )
        ours = filler.delay(attempt_context)
        if ours is None:  # botocore itself retries this one here (a bare 429 on 1.44)
            assert standard.StandardRetryConditions(99).is_retryable(attempt_context)
            continue
        assert ours == pytest.approx(
            botocore_backoff(service, jitter).delay_amount(attempt_context)
        )


@pytest.mark.parametrize(
    ("headers", "attempt", "jitter", "new", "old"),
    [
        ({}, 1, 0.5, 0.5 * 0.05, 0.5),
        ({}, 3, 0.5, 0.5 * 0.2, 2.0),
        ({}, 10, 1.0, 20.0, 20.0),  # capped at 20 s either way
        ({"x-amz-retry-after": "1500"}, 1, 0.0, 1.5, 0.0),  # honoured by the 2026 behaviour
        ({"x-amz-retry-after": "1500"}, 1, 0.5, 1.5, 0.5),
        ({"x-amz-retry-after": "9000"}, 1, 0.0, 5.0, 0.0),  # at most 5 s past the backoff
        ({"x-amz-retry-after": "-1"}, 1, 0.5, 0.025, 0.5),  # invalid: ignored
    ],
)
def test_the_wait_in_numbers(
    headers: dict[str, str], attempt: int, jitter: float, new: float, old: float
) -> None:
    # The same, spelt out for a bare 408 on S3 (not throttling: the 50 ms base).
    wait = GapFiller(lambda: jitter).delay(
        context(
            408,
            attempt=attempt,
            headers=headers,
            retries={"mode": "adaptive", "total_max_attempts": 99},
        )
    )
    assert wait == pytest.approx(new if NEW_RETRIES else old)


def test_zero_jitter_is_a_zero_delay_not_no_retry() -> None:
    wait = GapFiller(lambda: 0.0).delay(context(408))
    assert wait == 0.0
    assert wait is not None  # botocore's first-non-None rule: 0 means "retry now"


def test_the_default_jitter_is_random_and_bounded() -> None:
    filler = GapFiller()
    waits = [filler.delay(context(408, attempt=3)) for _ in range(30)]
    bound = 4 * (0.05 if NEW_RETRIES else 1)
    assert all(w is not None and 0 <= w < bound for w in waits)
    assert len(set(waits)) > 1


# -- max_attempts_of ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retries", "expected"),
    [
        ({"mode": "standard", "total_max_attempts": 4}, 4),
        ({"total_max_attempts": 1}, 1),
        ({"max_attempts": 2}, 3),  # Config(retries={"max_attempts": n}) counts retries
        ({"max_attempts": 0}, 1),
        ({"max_attempts": 9, "total_max_attempts": 5}, 5),
    ],
)
def test_max_attempts_of(retries: dict[str, Any], expected: int) -> None:
    assert max_attempts_of(retries, "s3") == expected


def test_max_attempts_of_follows_botocores_defaults_per_service() -> None:
    assert max_attempts_of({"mode": "standard"}, "s3") == 3
    assert max_attempts_of({"mode": "standard"}, "dynamodb") == (4 if NEW_RETRIES else 3)


# -- retry defaults on real sessions -----------------------------------------------------------


def plain_retries(service: str = "s3") -> dict[str, Any]:
    """A client's retries config when nobody chose anything (standard since botocore 1.44,
    legacy before)."""
    return dict(new_client(new_session(), service=service).meta.config.retries)


def test_applied_when_nothing_is_set() -> None:
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    assert new_client(session).meta.config.retries == OURS
    assert new_client(session, service="dynamodb").meta.config.retries == OURS


def test_applies_the_values_it_is_given() -> None:
    session = new_session()
    apply_retry_defaults(session, "standard", 2)
    assert new_client(session).meta.config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_restore_gives_botocores_defaults_back() -> None:
    session = new_session()
    defaults = apply_retry_defaults(session, "adaptive", 4)
    restore_retry_defaults(session, defaults)
    assert new_client(session).meta.config.retries == plain_retries()
    assert session.get_default_client_config() is None  # never touched


def test_restore_of_an_older_apply_leaves_the_newer_one() -> None:
    session = new_session()
    first = apply_retry_defaults(session, "adaptive", 4)
    apply_retry_defaults(session, "standard", 6)
    restore_retry_defaults(session, first)
    assert new_client(session).meta.config.retries == {"mode": "standard", "total_max_attempts": 6}


def test_apply_twice_is_one_layer() -> None:
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    apply_retry_defaults(session, "adaptive", 5)
    chain = session.get_component("config_store").get_config_provider("max_attempts")
    assert sum(type(p).__module__ == "botocore_resilience.retries" for p in chain._providers) == 1
    assert new_client(session).meta.config.retries["total_max_attempts"] == 5


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"AWS_RETRY_MODE": "standard"}, {"mode": "standard", "total_max_attempts": 4}),
        ({"AWS_MAX_ATTEMPTS": "7"}, {"mode": "adaptive", "total_max_attempts": 7}),
        (
            {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "7"},
            {"mode": "standard", "total_max_attempts": 7},
        ),
        ({"AWS_RETRY_MODE": "legacy"}, {"mode": "legacy", "total_max_attempts": 4}),
    ],
)
def test_aws_environment_variables_win(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], expected: dict[str, Any]
) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    assert new_client(session).meta.config.retries == expected


@pytest.mark.parametrize(
    ("profile_lines", "mode", "total"),
    [
        (["retry_mode = standard"], "standard", 4),
        (["max_attempts = 7"], "adaptive", 7),
        (["retry_mode = standard", "max_attempts = 7"], "standard", 7),
        (["region = eu-west-1"], "adaptive", 4),
    ],
)
def test_the_profile_wins(
    isolated_aws_config: Path, profile_lines: list[str], mode: str, total: int
) -> None:
    isolated_aws_config.write_text("[default]\n" + "\n".join(profile_lines) + "\n")
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    assert new_client(session).meta.config.retries == {"mode": mode, "total_max_attempts": total}


def test_a_named_profile_wins(isolated_aws_config: Path) -> None:
    isolated_aws_config.write_text(
        "[default]\n\n[profile batch]\nretry_mode = standard\nmax_attempts = 10\n"
    )
    session = new_session(profile="batch")
    apply_retry_defaults(session, "adaptive", 4)
    assert new_client(session).meta.config.retries == {"mode": "standard", "total_max_attempts": 10}


def test_a_profile_written_after_install_is_read_when_the_client_is_made(
    isolated_aws_config: Path,
) -> None:
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    isolated_aws_config.write_text("[default]\nmax_attempts = 9\n")
    session = new_session()  # botocore reads the file once per session
    apply_retry_defaults(session, "adaptive", 4)
    assert new_client(session).meta.config.retries == {"mode": "adaptive", "total_max_attempts": 9}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("retry_mode", "standard", {"mode": "standard", "total_max_attempts": 4}),
        ("max_attempts", 7, {"mode": "adaptive", "total_max_attempts": 7}),
    ],
)
def test_a_session_instance_variable_wins(
    variable: str, value: Any, expected: dict[str, Any]
) -> None:
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    session.set_config_variable(variable, value)  # after install too
    assert new_client(session).meta.config.retries == expected


@pytest.mark.parametrize(
    ("retries", "expected"),
    [
        ({"mode": "standard"}, {"mode": "standard", "total_max_attempts": 4}),
        ({"total_max_attempts": 2}, {"mode": "adaptive", "total_max_attempts": 2}),
        ({"max_attempts": 1}, {"mode": "adaptive", "total_max_attempts": 2}),
        ({"mode": "legacy"}, {"mode": "legacy", "total_max_attempts": 4}),
        ({"mode": "legacy", "total_max_attempts": 9}, {"mode": "legacy", "total_max_attempts": 9}),
    ],
)
def test_each_setting_of_a_config_wins_on_its_own(
    retries: dict[str, Any], expected: dict[str, Any]
) -> None:
    # The same for the session's default Config and a client's Config (botocore merges them
    # before it looks at its configuration chain, where our layer is).
    for through_default in (False, True):
        session = new_session()
        apply_retry_defaults(session, "adaptive", 4)
        mine = Config(connect_timeout=7, retries=dict(retries))
        if through_default:
            session.set_default_client_config(mine)
            client = new_client(session)
        else:
            client = new_client(session, mine)
        assert client.meta.config.retries == expected
        assert client.meta.config.connect_timeout == 7


def test_defaults_mode_keeps_its_timeouts_and_not_its_retry_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # defaults_mode rewrites the default of botocore's retry_mode chain when a client is made;
    # our layer sits above that default, and everything else defaults_mode sets stays.
    monkeypatch.setenv("AWS_DEFAULTS_MODE", "standard")
    plain = new_client(new_session())
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    client = new_client(session)
    assert client.meta.config.retries == OURS
    assert client.meta.config.connect_timeout == plain.meta.config.connect_timeout == 3.1


def test_a_chain_replaced_by_the_user_gets_the_layer_again() -> None:
    session = new_session()
    apply_retry_defaults(session, "adaptive", 4)
    store = session.get_component("config_store")
    store.set_config_provider("max_attempts", configprovider.ConstantProvider(2))
    apply_retry_defaults(session, "adaptive", 4)
    assert new_client(session).meta.config.retries == {"mode": "adaptive", "total_max_attempts": 2}


def test_shared_defaults_follow_their_source() -> None:
    current: list[Optional[RetrySettings]] = [RetrySettings("adaptive", 4)]
    session = new_session()
    apply_shared_retry_defaults(session, lambda: current[0])
    assert new_client(session).meta.config.retries == OURS
    current[0] = RetrySettings("standard", 2)
    assert new_client(session).meta.config.retries == {"mode": "standard", "total_max_attempts": 2}
    current[0] = None
    assert new_client(session).meta.config.retries == plain_retries()


def test_the_session_install_wins_over_shared_defaults() -> None:
    session = new_session()
    apply_shared_retry_defaults(session, lambda: RetrySettings("standard", 2))
    defaults = apply_retry_defaults(session, "adaptive", 6)
    assert new_client(session).meta.config.retries == {"mode": "adaptive", "total_max_attempts": 6}
    restore_retry_defaults(session, defaults)
    assert new_client(session).meta.config.retries == {"mode": "standard", "total_max_attempts": 2}


# -- AWS_NEW_RETRIES_2026, both ways, on a botocore that reads it (1.43) ------------------------

_BOTH_WAYS = """
import json
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.retries import standard
from botocore.retries.standard import RetryContext
from botocore_resilience.retries import GapFiller

session = botocore.session.Session()
client = session.create_client(
    "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
    endpoint_url="http://127.0.0.1:9",
    config=Config(retries={"mode": "standard", "total_max_attempts": 9}),
)
backoff = standard.register_retry_handler(client, max_attempts=9)._retry_policy._retry_backoff
backoff._random = lambda: 0.5
waits = []
for headers in ({}, {"x-amz-retry-after": "1500"}):
    for attempt in (1, 3):
        context = RetryContext(
            attempt_number=attempt,
            operation_model=client.meta.service_model.operation_model("GetObject"),
            parsed_response={"Error": {"Code": "ClientTimeout"}},
            http_response=AWSResponse("http://x", 408, headers, None),
            request_context={"client_config": client.meta.config},
        )
        waits.append([GapFiller(lambda: 0.5).delay(context), backoff.delay_amount(context)])
print(json.dumps(waits))
"""


@pytest.mark.skipif(
    not hasattr(configprovider, "_resolve_new_retries"),
    reason="this botocore does not read AWS_NEW_RETRIES_2026 (only 1.43 does)",
)
@pytest.mark.parametrize(
    ("flag", "expected"),
    [("true", [0.025, 0.1, 1.5, 1.5]), ("false", [0.5, 2.0, 0.5, 2.0])],
)
def test_the_wait_follows_aws_new_retries_2026(flag: str, expected: list[float]) -> None:
    # botocore reads the flag once, at import: each value needs its own interpreter.
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _BOTH_WAYS],
        env={**os.environ, "AWS_NEW_RETRIES_2026": flag},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    waits = json.loads(done.stdout)
    assert [ours for ours, _botocore in waits] == pytest.approx(expected)
    assert [botocore for _ours, botocore in waits] == pytest.approx(expected)
