"""install()/uninstall(), install_global() and the client plugin, on real sessions and clients.

No network: clients point at a closed port and, where a test makes a call, a ``before-send``
handler answers it (inside botocore's retry loop, unlike botocore's Stubber).
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import boto3
import boto3.session
import botocore
import botocore.session
import pytest
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import (
    CircuitBreakerOpen,
    CircuitState,
    ConfigurationError,
    Installation,
    install,
    install_global,
    uninstall,
    uninstall_global,
)
from botocore_resilience import plugin as plugin_module
from botocore_resilience.handlers import EventHandlers
from botocore_resilience.install import _installation_of as installation_of
from botocore_resilience.testing import FakeClock
from botocore_resilience.testing._stub import StubTransport

OURS = {"mode": "standard", "total_max_attempts": 4}
# One concrete event name per event install() registers on.
EVENTS = (
    "before-parameter-build.s3.HeadBucket",
    "before-call.s3.HeadBucket",
    "request-created.s3.HeadBucket",
    "needs-retry.s3.HeadBucket",
    "after-call.s3.HeadBucket",
    "after-call-error.s3.HeadBucket",
)
ORIGINAL_CREATE_CLIENT = botocore.session.Session.__dict__["create_client"]
_LOADER = botocore.session.Session().get_component("data_loader")


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No AWS or BOTOCORE_RESILIENCE configuration from this machine; no global leftovers."""
    import os

    for name in list(os.environ):
        if name.startswith(("BOTOCORE_RESILIENCE_", "BOTOCORE_EXPERIMENTAL__")):
            monkeypatch.delenv(name)
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert botocore.session.Session.__dict__["create_client"] is ORIGINAL_CREATE_CLIENT
    plugin_module._reset_for_tests()
    yield
    uninstall_global()
    plugin_module._reset_for_tests()
    assert botocore.session.Session.__dict__["create_client"] is ORIGINAL_CREATE_CLIENT


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def default_session() -> Iterator[None]:
    """boto3's default session, restored afterwards whatever the test did to it."""
    saved = boto3.DEFAULT_SESSION
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        if boto3.DEFAULT_SESSION is not None:
            uninstall(boto3.DEFAULT_SESSION)
        boto3.DEFAULT_SESSION = saved


def new_session(**kwargs: Any) -> botocore.session.Session:
    session = botocore.session.Session(**kwargs)
    session.register_component("data_loader", _LOADER)  # models parsed once: fast clients
    return session


def retry_variables(session: Any) -> dict[str, Any]:
    """The retry settings a botocore session resolves for clients that set none (the plugin
    puts its defaults in botocore's configuration chain: docs/explanation/adaptive-mode.md)."""
    return {
        "mode": session.get_config_variable("retry_mode"),
        "total_max_attempts": session.get_config_variable("max_attempts"),
    }


def botocore_default_retries() -> dict[str, Any]:
    """A client's retries config when nobody chose anything: legacy mode before botocore
    1.44, standard mode since."""
    return dict(new_client(new_session()).meta.config.retries)


def new_boto3_session() -> boto3.session.Session:
    return boto3.session.Session(botocore_session=new_session(), region_name="us-east-1")


def new_client(session: Any, config: Optional[Config] = None) -> Any:
    kwargs = {
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "endpoint_url": "http://127.0.0.1:9",
        "config": config,
    }
    if isinstance(session, boto3.session.Session):
        return session.client("s3", **kwargs)
    return session.create_client("s3", **kwargs)


def ours(events: Any) -> dict[str, int]:
    """How many of our handlers each event would call."""
    emitter = getattr(events, "_emitter", events)
    counts = {}
    for event in EVENTS:
        handlers = emitter._handlers.prefix_search(event)
        counts[event] = sum(
            isinstance(getattr(handler, "__self__", None), EventHandlers) for handler in handlers
        )
    return counts


def once_each(events: Any) -> bool:
    return set(ours(events).values()) == {1}


def none(events: Any) -> bool:
    return set(ours(events).values()) == {0}


def session_events(session: Any) -> Any:
    if isinstance(session, boto3.session.Session):
        session = session._session
    return session.get_component("event_emitter")


def answer(client: Any, status: int = 200, body: bytes = b"") -> None:
    """Answer every request ``client`` sends with ``status``, without any network."""
    client.meta.events.register("before-send.s3", StubTransport(status, body=body))


def head_bucket(client: Any, bucket: str = "invoices") -> None:
    answer(client)
    client.head_bucket(Bucket=bucket)


def calls(registry: CollectorRegistry, result: str = "success", bucket: str = "invoices") -> float:
    labels = {"service": "s3", "operation": "HeadBucket", "bucket": bucket, "result": result}
    return registry.get_sample_value("botocore_operations_total", labels) or 0.0


# -- targets --------------------------------------------------------------------------------


def test_install_on_a_boto3_session(registry: CollectorRegistry) -> None:
    session = new_boto3_session()
    installation = install(session, registry=registry, environ={})
    try:
        assert isinstance(installation, Installation)
        assert once_each(session.events)
        assert retry_variables(session._session) == OURS
        client = new_client(session)
        assert once_each(client.meta.events)
        assert client.meta.config.retries == OURS
        head_bucket(client)
        assert calls(registry) == 1
        assert list(installation.breakers()) == ["s3/us-east-1"]
        assert installation_of(session) is installation
    finally:
        uninstall(session)


def test_install_on_a_botocore_session(registry: CollectorRegistry) -> None:
    session = new_session()
    installation = install(session, registry=registry, environ={})
    try:
        assert once_each(session_events(session))
        client = new_client(session)
        assert once_each(client.meta.events)
        assert client.meta.config.retries == OURS
        head_bucket(client)
        assert calls(registry) == 1
        assert set(installation.breakers()) == {"s3/us-east-1"}
        breaker = installation.breakers()["s3/us-east-1"]
        assert breaker.name == "s3/us-east-1"
        assert breaker.state is CircuitState.CLOSED
    finally:
        uninstall(session)


def test_install_on_an_existing_client(registry: CollectorRegistry) -> None:
    session = new_session()
    client = new_client(session)
    installation = install(client, registry=registry, environ={})
    try:
        assert once_each(client.meta.events)
        assert none(session_events(session))  # the session is untouched...
        assert session.get_default_client_config() is None
        assert none(new_client(session).meta.events)  # ...so other clients are not covered
        head_bucket(client)
        assert calls(registry) == 1
        assert set(installation.breakers()) == {"s3/us-east-1"}
    finally:
        uninstall(client)
    assert none(client.meta.events)


def test_clients_created_before_a_session_install_are_not_covered(
    registry: CollectorRegistry,
) -> None:
    session = new_session()
    before = new_client(session)
    install(session, registry=registry, environ={})
    try:
        assert none(before.meta.events)
        assert before.meta.config.retries == botocore_default_retries()
        head_bucket(before)
        assert calls(registry) == 0
    finally:
        uninstall(session)


def test_install_on_a_client_of_an_installed_session_replaces_its_copied_handlers(
    registry: CollectorRegistry,
) -> None:
    session = new_session()
    on_session = install(session, registry=registry, environ={}, name="session")
    client = new_client(session)
    on_client = install(client, registry=registry, environ={}, name="client")
    try:
        assert once_each(client.meta.events)
        head_bucket(client)
        assert set(on_client.breakers()) == {"client/s3/us-east-1"}
        assert on_session.breakers() == {}
    finally:
        uninstall(client)
        uninstall(session)


def test_install_on_the_default_session(default_session: None, registry: CollectorRegistry) -> None:
    installation = install(None, registry=registry, environ={})
    assert boto3.DEFAULT_SESSION is not None  # created
    assert once_each(boto3.DEFAULT_SESSION.events)
    assert installation_of(None) is installation
    assert installation_of(boto3.DEFAULT_SESSION) is installation
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        endpoint_url="http://127.0.0.1:9",
    )
    assert once_each(client.meta.events)
    head_bucket(client)
    assert calls(registry) == 1
    uninstall(None)
    assert none(boto3.DEFAULT_SESSION.events)


def test_install_on_an_existing_default_session(
    default_session: None, registry: CollectorRegistry
) -> None:
    existing = new_boto3_session()
    boto3.DEFAULT_SESSION = existing
    install(registry=registry, environ={})
    assert boto3.DEFAULT_SESSION is existing
    assert once_each(existing.events)
    uninstall()
    assert none(existing.events)


@pytest.mark.parametrize(
    "target", ["s3", 42, object(), [], {"meta": None}], ids=lambda t: type(t).__name__
)
def test_unsupported_targets(target: Any, registry: CollectorRegistry) -> None:
    with pytest.raises(TypeError, match="install\\(\\) takes"):
        install(target, registry=registry, environ={})
    with pytest.raises(TypeError):
        uninstall(target)


def test_the_public_names() -> None:
    for name in botocore_resilience.__all__:
        assert hasattr(botocore_resilience, name), name
    assert {
        "install",
        "uninstall",
        "CircuitBreakerOpen",
        "ConfigurationError",
        "CircuitState",
    } <= set(botocore_resilience.__all__)


# -- idempotency ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["boto3", "botocore", "client"])
def test_install_twice_registers_each_handler_once(kind: str, registry: CollectorRegistry) -> None:
    session = new_boto3_session() if kind == "boto3" else new_session()
    target = new_client(session) if kind == "client" else session
    events = target.meta.events if kind == "client" else session_events(session)
    install(target, registry=registry, environ={})
    install(target, registry=registry, environ={})
    install(target, registry=registry, environ={}, scope="operation")
    try:
        assert once_each(events)
        if kind != "client":
            assert once_each(new_client(session).meta.events)
    finally:
        uninstall(target)


def test_the_second_install_replaces_the_first(registry: CollectorRegistry) -> None:
    session = new_session()
    first = install(session, registry=registry, environ={}, name="first")
    existing = new_client(session)  # copied the handlers under the first install
    second = install(
        session, registry=registry, environ={}, name="second", scope="operation", max_attempts=2
    )
    try:
        assert installation_of(session) is second
        assert second.settings.name == "second"
        head_bucket(existing)
        assert set(second.breakers()) == {"second/s3/us-east-1/HeadBucket"}
        assert first.breakers() == {}
        # The retry defaults are the second's too, for clients created from now on.
        assert new_client(session).meta.config.retries == {
            "mode": "standard",
            "total_max_attempts": 2,
        }
        # Uninstalling the replaced installation does nothing: it is attached nowhere.
        first.uninstall()
        assert once_each(session_events(session))
        assert installation_of(session) is second
    finally:
        second.uninstall()
    assert none(session_events(session))


def test_a_second_install_with_an_invalid_value_keeps_the_first(
    registry: CollectorRegistry,
) -> None:
    session = new_session()
    first = install(session, registry=registry, environ={})
    try:
        with pytest.raises(ConfigurationError):
            install(session, registry=registry, environ={}, failure_threshold=0)
        assert installation_of(session) is first
        assert once_each(session_events(session))
        assert retry_variables(session) == OURS
    finally:
        uninstall(session)


# -- uninstall ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["uninstall", "Installation.uninstall"])
@pytest.mark.parametrize("kind", ["boto3", "botocore"])
def test_uninstall_removes_handlers_and_restores_the_default_client_config(
    how: str, kind: str, registry: CollectorRegistry
) -> None:
    session = new_boto3_session() if kind == "boto3" else new_session()
    botocore_session = session._session if kind == "boto3" else session
    previous = Config(connect_timeout=3)
    botocore_session.set_default_client_config(previous)
    installation = install(session, registry=registry, environ={})
    assert retry_variables(botocore_session) == OURS
    assert botocore_session.get_default_client_config() is previous  # never replaced
    if how == "uninstall":
        uninstall(session)
    else:
        installation.uninstall()
    assert none(session_events(session))
    assert botocore_session.get_default_client_config() is previous
    assert installation_of(session) is None
    client = new_client(session)
    assert none(client.meta.events)
    assert client.meta.config.retries == botocore_default_retries()


def test_uninstall_restores_no_default_client_config(registry: CollectorRegistry) -> None:
    session = new_session()
    install(session, registry=registry, environ={})
    uninstall(session)
    assert session.get_default_client_config() is None


@pytest.mark.parametrize("how", ["uninstall", "Installation.uninstall"])
def test_clients_created_before_uninstall_go_quiet(how: str, registry: CollectorRegistry) -> None:
    session = new_session()
    installation = install(session, registry=registry, environ={}, failure_threshold=1)
    client = new_client(session)
    head_bucket(client)
    assert calls(registry) == 1
    if how == "uninstall":
        uninstall(session)
    else:
        installation.uninstall()
    client.head_bucket(Bucket="invoices")
    assert calls(registry) == 1  # not counted
    assert set(installation.breakers()) == {"s3/us-east-1"}  # only the call from before


def test_uninstall_of_a_client(registry: CollectorRegistry) -> None:
    client = new_client(new_session())
    installation = install(client, registry=registry, environ={})
    installation.uninstall()
    assert none(client.meta.events)
    head_bucket(client)
    assert calls(registry) == 0


def test_uninstall_without_install_is_a_no_op() -> None:
    session = new_session()
    previous = Config(connect_timeout=3)
    session.set_default_client_config(previous)
    uninstall(session)
    uninstall(session)
    assert none(session_events(session))
    assert session.get_default_client_config() is previous


def test_uninstall_twice_and_install_again(registry: CollectorRegistry) -> None:
    session = new_session()
    installation = install(session, registry=registry, environ={})
    installation.uninstall()
    installation.uninstall()
    uninstall(session)
    again = install(session, registry=registry, environ={})
    try:
        assert once_each(session_events(session))
        assert installation_of(session) is again
        assert retry_variables(session) == OURS
    finally:
        uninstall(session)


def test_an_installed_session_can_be_garbage_collected(registry: CollectorRegistry) -> None:
    # Applications that make a session per thread or per request and install on each must
    # not keep every one of them alive forever.
    session = new_session()
    install(session, registry=registry, environ={})
    ref = weakref.ref(session)
    del session
    gc.collect()
    assert ref() is None, "install() keeps its session alive until uninstall()"


def test_an_installed_client_can_be_garbage_collected(registry: CollectorRegistry) -> None:
    client = new_client(new_session())
    install(client, registry=registry, environ={})
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None


def test_an_uninstalled_session_can_be_garbage_collected(registry: CollectorRegistry) -> None:
    session = new_session()
    install(session, registry=registry, environ={})
    uninstall(session)
    ref = weakref.ref(session)
    del session
    gc.collect()
    assert ref() is None


# -- enabled / breaker settings -------------------------------------------------------------


@pytest.mark.parametrize("how", ["keyword", "environment"])
def test_disabled_registers_nothing(how: str, registry: CollectorRegistry) -> None:
    session = new_session()
    if how == "keyword":
        installation = install(session, registry=registry, environ={}, enabled=False)
    else:
        environ = {"BOTOCORE_RESILIENCE_ENABLED": "false"}
        installation = install(session, registry=registry, environ=environ)
    assert isinstance(installation, Installation)
    assert installation.settings.enabled is False
    assert none(session_events(session))
    assert session.get_default_client_config() is None
    assert installation_of(session) is None
    client = new_client(session)
    assert none(client.meta.events)
    head_bucket(client)
    assert calls(registry) == 0


def test_disabled_creates_no_metrics(registry: CollectorRegistry) -> None:
    install(new_session(), registry=registry, environ={}, enabled=False)
    assert [family.name for family in registry.collect()] == []


def test_disabled_after_an_install_uninstalls(registry: CollectorRegistry) -> None:
    session = new_session()
    install(session, registry=registry, environ={})
    install(session, registry=registry, environ={}, enabled=False)
    assert none(session_events(session))
    assert session.get_default_client_config() is None
    assert installation_of(session) is None


def test_breaker_off_has_no_circuits_but_counts_calls(registry: CollectorRegistry) -> None:
    session = new_session()
    installation = install(session, registry=registry, environ={}, breaker="off")
    try:
        assert once_each(session_events(session))
        client = new_client(session)
        head_bucket(client)
        assert installation.breakers() == {}
        assert calls(registry) == 1
        assert client.meta.config.retries == OURS  # retries still apply
    finally:
        uninstall(session)


def test_the_circuit_rejects_without_sending(registry: CollectorRegistry) -> None:
    session = new_session()
    clock = FakeClock()
    installation = install(
        session, registry=registry, environ={}, clock=clock, failure_threshold=1, jitter=lambda: 0.0
    )
    try:
        client = new_client(session, Config(retries={"mode": "standard", "total_max_attempts": 1}))
        sent: list[str] = []

        def failing(request: Any) -> int:
            sent.append(request.url)
            return 500

        before_send = StubTransport(failing)

        client.meta.events.register("before-send.s3", before_send)
        with pytest.raises(botocore.exceptions.ClientError):
            client.head_bucket(Bucket="invoices")
        assert installation.breakers()["s3/us-east-1"].state is CircuitState.OPEN
        clock.advance(10)
        with pytest.raises(CircuitBreakerOpen) as caught:
            client.head_bucket(Bucket="invoices")
        assert len(sent) == 1
        error = caught.value
        assert (error.circuit_name, error.service, error.operation) == (
            "s3/us-east-1",
            "s3",
            "HeadBucket",
        )
        assert error.retry_after == pytest.approx(50.0)
        assert calls(registry, "circuit_open") == 1
    finally:
        uninstall(session)


def test_name_prefixes_circuits(registry: CollectorRegistry) -> None:
    session = new_session()
    installation = install(session, registry=registry, environ={}, name="storage")
    try:
        head_bucket(new_client(session))
        assert set(installation.breakers()) == {"storage/s3/us-east-1"}
    finally:
        uninstall(session)


# -- install_global -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["botocore", "boto3"])
def test_install_global_covers_clients_of_new_sessions(
    kind: str, registry: CollectorRegistry
) -> None:
    installation = install_global(registry=registry, environ={})
    session = new_boto3_session() if kind == "boto3" else new_session()
    assert none(session_events(session))  # the session itself is not touched
    client = new_client(session)
    assert once_each(client.meta.events)
    assert client.meta.config.retries == OURS
    head_bucket(client)
    assert calls(registry) == 1
    assert set(installation.breakers()) == {"s3/us-east-1"}


def test_install_global_covers_boto3_client(
    default_session: None, registry: CollectorRegistry
) -> None:
    install_global(registry=registry, environ={})
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        endpoint_url="http://127.0.0.1:9",
    )
    assert once_each(client.meta.events)


def test_install_global_keeps_a_client_config_that_sets_retries(
    registry: CollectorRegistry,
) -> None:
    install_global(registry=registry, environ={})
    client = new_client(new_session(), Config(retries={"mode": "standard"}))
    assert client.meta.config.retries["mode"] == "standard"
    other = new_client(new_session(), Config(connect_timeout=4))
    assert other.meta.config.retries == OURS
    assert other.meta.config.connect_timeout == 4


def test_install_global_is_idempotent(registry: CollectorRegistry) -> None:
    install_global(registry=registry, environ={}, name="first")
    wrapper = botocore.session.Session.__dict__["create_client"]
    assert wrapper is not ORIGINAL_CREATE_CLIENT
    existing = new_client(new_session())
    second = install_global(registry=registry, environ={}, name="second")
    assert botocore.session.Session.__dict__["create_client"] is wrapper  # not wrapped twice
    assert wrapper.__wrapped__ is ORIGINAL_CREATE_CLIENT
    client = new_client(new_session())
    assert once_each(client.meta.events)
    assert once_each(existing.meta.events)
    head_bucket(existing)  # clients from before see the new options
    assert set(second.breakers()) == {"second/s3/us-east-1"}


def test_uninstall_global_restores_create_client_exactly(registry: CollectorRegistry) -> None:
    install_global(registry=registry, environ={})
    install_global(registry=registry, environ={})
    existing = new_client(new_session())
    uninstall_global()
    assert botocore.session.Session.__dict__["create_client"] is ORIGINAL_CREATE_CLIENT
    assert botocore.session.Session.create_client is ORIGINAL_CREATE_CLIENT
    uninstall_global()  # idempotent
    assert botocore.session.Session.create_client is ORIGINAL_CREATE_CLIENT
    client = new_client(new_session())
    assert none(client.meta.events)
    assert client.meta.config.retries == botocore_default_retries()
    head_bucket(existing)  # goes quiet
    assert calls(registry) == 0


def test_install_global_disabled_registers_nothing(registry: CollectorRegistry) -> None:
    install_global(registry=registry, environ={}, enabled=False)
    assert botocore.session.Session.__dict__["create_client"] is ORIGINAL_CREATE_CLIENT
    assert none(new_client(new_session()).meta.events)


def test_install_global_with_a_bad_value_raises_before_wrapping(
    registry: CollectorRegistry,
) -> None:
    with pytest.raises(ConfigurationError):
        install_global(registry=registry, environ={"BOTOCORE_RESILIENCE_SCOPE": "planet"})
    assert botocore.session.Session.__dict__["create_client"] is ORIGINAL_CREATE_CLIENT
    assert list(registry.collect()) == []


def test_a_session_install_wins_over_install_global(registry: CollectorRegistry) -> None:
    global_registry = CollectorRegistry()
    install_global(registry=global_registry, environ={}, name="global")
    session = new_session()
    local = install(session, registry=registry, environ={}, name="local")
    try:
        client = new_client(session)
        assert once_each(client.meta.events)
        head_bucket(client)
        assert set(local.breakers()) == {"local/s3/us-east-1"}
        assert calls(global_registry) == 0
    finally:
        uninstall(session)


# -- the botocore client plugin -------------------------------------------------------------


def test_initialize_client_plugin_installs_on_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOTOCORE_RESILIENCE_METRICS", "off")  # keep the global registry clean
    monkeypatch.setenv("BOTOCORE_RESILIENCE_FAILURE_THRESHOLD", "1")
    monkeypatch.setenv("BOTOCORE_RESILIENCE_NAME", "plugin-test")
    client = new_client(
        new_session(), Config(retries={"mode": "standard", "total_max_attempts": 1})
    )
    plugin_module.initialize_client_plugin(client)
    plugin_module.initialize_client_plugin(client)  # twice: still once each
    assert once_each(client.meta.events)
    answer(client, status=503)
    with pytest.raises(botocore.exceptions.ClientError):
        client.head_bucket(Bucket="invoices")
    with pytest.raises(CircuitBreakerOpen) as caught:
        client.head_bucket(Bucket="invoices")
    assert caught.value.circuit_name == "plugin-test/s3/us-east-1"


def test_initialize_client_plugin_logs_a_bad_value_and_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOTOCORE_RESILIENCE_FAILURE_THRESHOLD", "zero")
    client = new_client(new_session())
    with caplog.at_level(logging.DEBUG, logger="botocore_resilience"):
        plugin_module.initialize_client_plugin(client)
        plugin_module.initialize_client_plugin(new_client(new_session()))
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once, not once per client
    assert errors[0].name == "botocore_resilience"
    message = errors[0].getMessage()
    assert "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD" in message
    assert "'zero'" in message
    assert none(client.meta.events)


def test_initialize_client_plugin_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTOCORE_RESILIENCE_ENABLED", "no")
    client = new_client(new_session())
    plugin_module.initialize_client_plugin(client)
    assert none(client.meta.events)


def _botocore_version() -> tuple[int, ...]:
    return tuple(int(part) for part in botocore.__version__.split(".")[:3])


@pytest.mark.skipif(
    _botocore_version() < (1, 39, 9), reason="botocore client plugins need botocore >= 1.39.9"
)
def test_the_botocore_plugins_env_var_covers_new_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTOCORE_RESILIENCE_METRICS", "off")
    monkeypatch.setenv("BOTOCORE_EXPERIMENTAL__PLUGINS", "resilience=botocore_resilience.plugin")
    client = new_client(new_session())
    assert once_each(client.meta.events)
    monkeypatch.delenv("BOTOCORE_EXPERIMENTAL__PLUGINS")
    assert none(new_client(new_session()).meta.events)
