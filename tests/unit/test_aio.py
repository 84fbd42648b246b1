"""``botocore_resilience.aio``: the wrapper ``install_global()`` puts around aiobotocore's
client creation, checked with a stand-in coroutine (no aiobotocore needed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from botocore_resilience import aio


class Session:
    """Stands in for an ``AioSession``: its ``_create_client`` is a coroutine function."""

    async def _create_client(self, service_name: str, **kwargs: Any) -> dict[str, Any]:
        return {"service": service_name, **kwargs}


def call(wrapper: Any, instance: Any, *args: Any, **kwargs: Any) -> Any:
    async def create(*a: Any, **k: Any) -> Any:
        return await Session._create_client(instance, *a, **k)

    return asyncio.run(wrapper(create, instance, args, kwargs))


def test_prepares_the_session_then_covers_the_client_it_made() -> None:
    seen: list[Any] = []
    wrapper = aio.client_creation_wrapper(
        lambda session: seen.append(("prepare", session)) or True,
        lambda client: seen.append(("cover", client)),
        "install_global",
    )
    session = Session()
    client = call(wrapper, session, "s3", region_name="eu-west-1")
    assert client == {"service": "s3", "region_name": "eu-west-1"}
    assert seen == [("prepare", session), ("cover", client)]


def test_nothing_is_covered_when_prepare_says_no() -> None:
    covered: list[Any] = []
    wrapper = aio.client_creation_wrapper(lambda session: False, covered.append, "x")
    assert call(wrapper, Session(), "s3") == {"service": "s3"}
    assert covered == []


@pytest.mark.parametrize("where", ["prepare", "cover"])
def test_a_failure_of_ours_is_logged_and_the_client_is_still_made(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(_: Any) -> bool:
        raise RuntimeError("ours")

    prepare = boom if where == "prepare" else (lambda session: True)
    cover = boom if where == "cover" else (lambda client: None)
    wrapper = aio.client_creation_wrapper(prepare, cover, "install_global")
    with caplog.at_level(logging.DEBUG, logger="botocore_resilience"):  # WARNING once, then DEBUG
        assert call(wrapper, Session(), "s3") == {"service": "s3"}
    assert any("install_global" in record.getMessage() for record in caplog.records)


def test_an_unbound_call_passes_straight_through() -> None:
    wrapper = aio.client_creation_wrapper(lambda s: pytest.fail("no"), pytest.fail, "x")

    def plain(*args: Any) -> str:
        return "made"

    assert wrapper(plain, None, ("s3",), {}) == "made"


def test_session_class_is_none_without_aiobotocore_or_the_aio_session() -> None:
    try:
        from aiobotocore.session import AioSession
    except ImportError:
        assert aio.session_class() is None
    else:
        assert aio.session_class() is AioSession
