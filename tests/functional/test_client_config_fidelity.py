"""The user's configuration is theirs: with the plugin, a client is exactly the client botocore
would have made, except for the retry mode and attempts where the user set none.

Every scenario below builds one client three ways, from equal fresh sessions: plain botocore,
``install(session)`` and ``install_global()``. Every ``Config`` option except ``retries``
must be equal (and the endpoint, region, timeouts and user agent the client really uses);
``retries`` must be the user's where they set it and the plugin's where they did not.
No client here sends anything: they are made to be looked at.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import boto3
import botocore.session
import pytest
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience

OURS = {"mode": "standard", "total_max_attempts": 4}
KEYS = {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "secret"}

_LOADER = botocore.session.Session().get_component("data_loader")


@pytest.fixture(autouse=True)
def aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Nothing from this machine's AWS configuration reaches botocore; each test writes its own."""
    for name in (
        "AWS_RETRY_MODE",
        "AWS_MAX_ATTEMPTS",
        "AWS_DEFAULTS_MODE",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_EXECUTION_ENV",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "BOTOCORE_EXPERIMENTAL__PLUGINS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    config_file = tmp_path / "config"
    config_file.write_text("[default]\nregion = us-west-2\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    return config_file


def botocore_session() -> botocore.session.Session:
    session = botocore.session.Session()
    session.register_component("data_loader", _LOADER)  # models parsed once for all tests
    return session


@dataclass
class Scenario:
    """How a user makes a client, and which of the two retry settings they set themselves."""

    make: Callable[[botocore.session.Session], Any]
    sets_mode: bool = False
    sets_attempts: bool = False
    environ: dict[str, str] = field(default_factory=dict)
    profile: str = ""
    session_is_made_inside: bool = False  # by a library, out of install(session)'s reach


def client(service: str = "s3", **kwargs: Any) -> Callable[[Any], Any]:
    def make(session: Any) -> Any:
        made = dict(kwargs)
        config = made.pop("config", None)
        if callable(config):
            made["config"] = config()
        elif config is not None:
            made["config"] = copy.deepcopy(config)
        return session.create_client(service, **KEYS, **made)

    return make


def set_after(**attributes: Any) -> Callable[[], Config]:
    """A ``Config`` whose options are set as attributes after construction (what boto3's
    resource and s3transfer's process pool do)."""

    def build() -> Config:
        config = Config()
        for name, value in attributes.items():
            setattr(config, name, copy.deepcopy(value))
        return config

    return build


def with_default_config(
    default: Callable[[], Config], inner: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    def make(session: Any) -> Any:
        session.set_default_client_config(default())
        return inner(session)

    return make


def resource(**kwargs: Any) -> Callable[[Any], Any]:
    def make(session: Any) -> Any:
        made = dict(kwargs)
        if callable(made.get("config")):
            made["config"] = made["config"]()
        boto = boto3.Session(botocore_session=session, region_name="eu-west-1", **KEYS)
        return boto.resource("s3", **made).meta.client

    return make


def process_pool_client(**client_kwargs: Any) -> Callable[[Any], Any]:
    def make(_session: Any) -> Any:
        from s3transfer.processpool import ClientFactory

        made = {
            name: value() if callable(value) else value for name, value in client_kwargs.items()
        }
        return ClientFactory({**KEYS, "region_name": "eu-west-1", **made}).create_client()

    return make


def instance_variable(name: str, value: Any, inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def make(session: Any) -> Any:
        session.set_config_variable(name, value)
        return inner(session)

    return make


SCENARIOS = {
    "no-config": Scenario(client()),
    "region-argument": Scenario(client(region_name="ap-south-1")),
    "constructor-options": Scenario(
        client(
            config=Config(
                region_name="eu-central-1",
                connect_timeout=7,
                read_timeout=11,
                max_pool_connections=3,
                s3={"addressing_style": "path"},
                user_agent_extra="app/1",
                parameter_validation=False,
                tcp_keepalive=True,
            )
        )
    ),
    "options-set-after-construction": Scenario(  # issue 10, item 1
        client(
            config=set_after(
                region_name="eu-central-1",
                connect_timeout=7,
                read_timeout=11,
                s3={"addressing_style": "path"},
                user_agent_extra="app/1",
            )
        )
    ),
    "retries-set-after-construction": Scenario(
        client(config=set_after(retries={"mode": "standard", "total_max_attempts": 2})),
        sets_mode=True,
        sets_attempts=True,
    ),
    "defaults-mode-environment": Scenario(  # issue 10, item 2
        client(), environ={"AWS_DEFAULTS_MODE": "standard"}
    ),
    "defaults-mode-in-region": Scenario(
        client(region_name="us-west-2"), environ={"AWS_DEFAULTS_MODE": "in-region"}
    ),
    "defaults-mode-config": Scenario(client(config=Config(defaults_mode="cross-region"))),
    "defaults-mode-profile": Scenario(client(), profile="defaults_mode = standard\n"),
    "profile-settings": Scenario(
        client(),
        profile="region = eu-north-1\ns3 =\n  addressing_style = virtual\n"
        "retry_mode = standard\nmax_attempts = 6\n",
        sets_mode=True,
        sets_attempts=True,
    ),
    "profile-mode-only": Scenario(client(), profile="retry_mode = standard\n", sets_mode=True),
    "environment": Scenario(
        client(),
        environ={
            "AWS_DEFAULT_REGION": "sa-east-1",
            "AWS_MAX_ATTEMPTS": "2",
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9",
        },
        sets_attempts=True,
    ),
    "client-config-mode-only": Scenario(
        client(config=Config(retries={"mode": "standard"})), sets_mode=True
    ),
    "client-config-retries-counted": Scenario(
        client(config=Config(retries={"max_attempts": 1}, connect_timeout=2)),
        sets_attempts=True,
    ),
    "legacy-chosen-in-config": Scenario(  # issue 10, item 4
        client("dynamodb", region_name="us-east-1", config=Config(retries={"mode": "legacy"})),
        sets_mode=True,
    ),
    "legacy-chosen-in-environment": Scenario(
        client("dynamodb", region_name="us-east-1"),
        environ={"AWS_RETRY_MODE": "legacy"},
        sets_mode=True,
    ),
    "dynamodb": Scenario(client("dynamodb", region_name="us-east-1")),  # issue 10, item 5
    "session-default-config-set-after": Scenario(
        with_default_config(
            set_after(connect_timeout=5, region_name="eu-west-3"),
            client(config=Config(read_timeout=9)),
        )
    ),
    "session-default-config-only": Scenario(
        with_default_config(set_after(connect_timeout=5, s3={"addressing_style": "path"}), client())
    ),
    "session-default-config-with-retries": Scenario(
        with_default_config(lambda: Config(retries={"mode": "standard"}), client()),
        sets_mode=True,
    ),
    "session-instance-variables": Scenario(
        instance_variable("region", "ca-central-1", instance_variable("max_attempts", 7, client())),
        sets_attempts=True,
    ),
    "fips-pseudo-region": Scenario(client(region_name="fips-us-gov-west-1")),
    "resource": Scenario(resource()),
    "resource-with-config": Scenario(
        resource(config=set_after(connect_timeout=4, s3={"addressing_style": "path"}))
    ),
    "process-pool-client": Scenario(process_pool_client(), session_is_made_inside=True),
    "process-pool-client-with-config": Scenario(
        process_pool_client(config=set_after(read_timeout=13, user_agent_extra="mine")),
        session_is_made_inside=True,
    ),
}

_RETRY_MODE_IN_USER_AGENT = re.compile(r" ?cfg/retry-mode#\w+")


def observed(client: Any) -> dict[str, Any]:
    """Everything botocore resolved for ``client`` that the plugin must not change."""
    config = client.meta.config
    seen = {name: getattr(config, name) for name in Config.OPTION_DEFAULTS if name != "retries"}
    # The user agent names the retry mode (botocore >= 1.36): the one place it shows.
    seen["user_agent"] = _RETRY_MODE_IN_USER_AGENT.sub("", str(seen["user_agent"]))
    seen["supplied user agent"] = getattr(config, "_supplied_user_agent", None)
    seen["inject_host_prefix"] = config.inject_host_prefix
    seen["region"] = client.meta.region_name
    seen["endpoint"] = client.meta.endpoint_url
    seen["partition"] = client.meta.partition
    seen["timeouts"] = repr(client._endpoint.http_session._timeout)  # no __eq__
    seen["pool size"] = client._endpoint.http_session._max_pool_connections
    return seen


def retries_of(client: Any) -> dict[str, Any]:
    return dict(client.meta.config.retries)


def expected_retries(plain: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    mode = plain["mode"] if scenario.sets_mode else OURS["mode"]
    attempts = plain.get("total_max_attempts") if scenario.sets_attempts else 4
    expected: dict[str, Any] = {"mode": mode}
    if attempts is not None:
        expected["total_max_attempts"] = attempts
    return expected


@pytest.fixture
def prepare(monkeypatch: pytest.MonkeyPatch, aws_config: Path) -> Callable[[Scenario], None]:
    def apply(scenario: Scenario) -> None:
        for name, value in scenario.environ.items():
            monkeypatch.setenv(name, value)
        region = "" if "region =" in scenario.profile else "region = us-west-2\n"
        aws_config.write_text("[default]\n" + region + scenario.profile)

    return apply


@pytest.fixture
def global_install() -> Iterator[Callable[[], Any]]:
    def install() -> Any:
        return botocore_resilience.install_global(registry=CollectorRegistry(), environ={})

    yield install
    botocore_resilience.uninstall_global()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_install_session_changes_nothing_but_retries(
    name: str, prepare: Callable[[Scenario], None]
) -> None:
    scenario = SCENARIOS[name]
    prepare(scenario)
    plain = scenario.make(botocore_session())
    session = botocore_session()
    installation = botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    try:
        made = scenario.make(session)
    finally:
        installation.uninstall()
    assert observed(made) == observed(plain)
    if scenario.session_is_made_inside:
        assert retries_of(made) == retries_of(plain)  # out of reach of install(session)
    else:
        assert retries_of(made) == expected_retries(retries_of(plain), scenario)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_install_global_changes_nothing_but_retries(
    name: str, prepare: Callable[[Scenario], None], global_install: Callable[[], Any]
) -> None:
    scenario = SCENARIOS[name]
    prepare(scenario)
    plain = scenario.make(botocore_session())
    global_install()
    made = scenario.make(botocore_session())
    assert observed(made) == observed(plain)
    assert retries_of(made) == expected_retries(retries_of(plain), scenario)


def test_both_paths_agree_on_every_scenario(
    prepare: Callable[[Scenario], None], global_install: Callable[[], Any]
) -> None:
    # Issue 10, item 4: install(session) and install_global() give the same retries.
    for name, scenario in SCENARIOS.items():
        if scenario.session_is_made_inside:
            continue
        prepare(scenario)
        session = botocore_session()
        installation = botocore_resilience.install(
            session, registry=CollectorRegistry(), environ={}
        )
        try:
            by_session = retries_of(scenario.make(session))
        finally:
            installation.uninstall()
        global_install()
        try:
            by_global = retries_of(scenario.make(botocore_session()))
        finally:
            botocore_resilience.uninstall_global()
        assert by_session == by_global, name


def test_legacy_chosen_by_the_user_keeps_its_table_and_gets_our_attempts(
    prepare: Callable[[Scenario], None],
) -> None:
    # The documented rule (docs/explanation/adaptive-mode.md): the plugin's max_attempts
    # fills in attempts wherever the user set none, legacy mode included, exactly as
    # AWS_MAX_ATTEMPTS would; the legacy table itself is the user's and is not extended.
    scenario = SCENARIOS["legacy-chosen-in-config"]
    prepare(scenario)
    session = botocore_session()
    installation = botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    try:
        made = scenario.make(session)
    finally:
        installation.uninstall()
    assert retries_of(made) == {"mode": "legacy", "total_max_attempts": 4}


def test_uninstall_gives_botocore_defaults_back(prepare: Callable[[Scenario], None]) -> None:
    prepare(SCENARIOS["no-config"])
    plain = retries_of(client()(botocore_session()))
    session = botocore_session()
    botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    assert retries_of(client()(session)) == OURS
    botocore_resilience.uninstall(session)
    assert retries_of(client()(session)) == plain
    assert session.get_config_variable("max_attempts") is None


def test_uninstall_global_gives_botocore_defaults_back(
    prepare: Callable[[Scenario], None], global_install: Callable[[], Any]
) -> None:
    prepare(SCENARIOS["no-config"])
    plain = retries_of(client()(botocore_session()))
    session = botocore_session()
    global_install()
    assert retries_of(client()(session)) == OURS
    botocore_resilience.uninstall_global()
    assert retries_of(client()(session)) == plain  # the same session, seen while installed


def test_reinstall_global_with_other_settings_reaches_sessions_seen_before(
    prepare: Callable[[Scenario], None],
) -> None:
    prepare(SCENARIOS["no-config"])
    session = botocore_session()
    try:
        botocore_resilience.install_global(registry=CollectorRegistry(), environ={})
        assert retries_of(client()(session)) == OURS
        botocore_resilience.install_global(
            registry=CollectorRegistry(), environ={}, retry_mode="standard", max_attempts=2
        )
        assert retries_of(client()(session)) == {"mode": "standard", "total_max_attempts": 2}
    finally:
        botocore_resilience.uninstall_global()


def test_a_session_install_wins_over_the_global_one(
    prepare: Callable[[Scenario], None], global_install: Callable[[], Any]
) -> None:
    prepare(SCENARIOS["no-config"])
    session = botocore_session()
    global_install()
    client()(session)  # the global install has seen this session
    installation = botocore_resilience.install(
        session, registry=CollectorRegistry(), environ={}, retry_mode="standard", max_attempts=6
    )
    try:
        assert retries_of(client()(session)) == {"mode": "standard", "total_max_attempts": 6}
    finally:
        installation.uninstall()
    assert retries_of(client()(session)) == OURS  # the global one again


def test_the_session_reports_the_plugin_defaults_as_its_own(
    prepare: Callable[[Scenario], None],
) -> None:
    # What a user reading the session's configuration sees, and what botocore resolves.
    prepare(SCENARIOS["profile-mode-only"])
    session = botocore_session()
    installation = botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    try:
        assert session.get_config_variable("retry_mode") == "standard"  # the profile's
        assert session.get_config_variable("max_attempts") == 4  # ours
    finally:
        installation.uninstall()
