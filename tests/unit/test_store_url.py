"""``state_url``: which URLs are accepted, and that the password never shows."""

from __future__ import annotations

import json
import pickle

import pytest

from botocore_resilience.config import Settings
from botocore_resilience.errors import ConfigurationError
from botocore_resilience.store import InvalidStateUrl, StateUrl, parse_state_url, redact_url

SECRET = "pa55-w0rd"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@localhost:6379/0",
        f"redis://app:{SECRET}@localhost:6379/0",
        f"rediss://app:{SECRET}@cache.example.com:6380/0?ssl_cert_reqs=required",
        f"redis://localhost:6379/0?password={SECRET}",
        f"unix://:{SECRET}@/run/redis.sock?db=1",
        f"redis://app:{SECRET}@localhost:7000?cluster=true",
    ],
)
def test_the_password_is_never_shown(url: str) -> None:
    parsed = parse_state_url(url)
    settings = Settings.from_env({"BOTOCORE_RESILIENCE_STATE_URL": url})
    shown = [
        str(parsed),
        repr(parsed),
        f"{parsed}",
        json.dumps(parsed),
        repr(settings),
        str(settings.as_dict()),
    ]
    for text in shown:
        assert SECRET not in text
        assert "***" in text
    assert SECRET in parsed.unredacted()  # what the connection uses


def test_a_url_survives_pickling_with_its_password() -> None:
    parsed = parse_state_url(f"redis://:{SECRET}@localhost:6379/0?cluster=true")
    copy = pickle.loads(pickle.dumps(parsed))
    assert copy.unredacted() == parsed.unredacted()
    assert copy.cluster
    assert str(copy) == str(parsed)


@pytest.mark.parametrize(
    "url",
    [
        f"http://:{SECRET}@localhost",
        f"redis://:{SECRET}@localhost:99999",
        f"redis://:{SECRET}@:6379",
        f"redis://:{SECRET}@localhost?cluster=maybe",
        f"unix://:{SECRET}@/run/redis.sock?cluster=true",
    ],
)
def test_an_invalid_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(InvalidStateUrl) as caught:
        parse_state_url(url)
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigurationError) as error:
        Settings.from_env({"BOTOCORE_RESILIENCE_STATE_URL": url})
    assert SECRET not in str(error.value)
    assert SECRET not in repr(error.value.value)
    assert error.value.variable == "BOTOCORE_RESILIENCE_STATE_URL"


def test_cluster_is_selected_by_the_url() -> None:
    assert parse_state_url("redis://h:7000?cluster=true").cluster
    assert not parse_state_url("redis://h:7000").cluster
    assert not parse_state_url("redis://h:7000?cluster=no").cluster
    # The flag is ours: redis-py never sees it.
    assert "cluster" not in parse_state_url("redis://h:7000?cluster=1&db=0").unredacted()


def test_text_that_is_no_url_is_still_masked() -> None:
    assert SECRET not in redact_url(f"redis://user:{SECRET}@[::1")
    assert redact_url("redis://localhost:6379") == "redis://localhost:6379"


def test_a_parsed_url_passes_through_a_keyword_unchanged() -> None:
    parsed = parse_state_url(f"redis://:{SECRET}@localhost")
    settings = Settings.from_env({}, state_url=parsed)
    assert isinstance(settings.state_url, StateUrl)
    assert settings.state_url.unredacted() == parsed.unredacted()
