"""aiobotocore and aioboto3 sessions for a local endpoint, like ``_clients`` makes boto3 ones."""

from __future__ import annotations

from typing import Any

from ._clients import DUMMY_CREDENTIALS, REGION, dedupe_search_paths, make_client, shared_loader

__all__ = ["make_aio_client", "make_aio_session", "make_aioboto3_session"]


def make_aio_session() -> Any:
    """A new ``aiobotocore.session.AioSession`` with dummy credentials and region ``us-east-1``.

    It shares the model loader of the sessions ``_clients`` makes, so making one is cheap.
    """
    from aiobotocore.session import AioSession

    session = AioSession()
    session.register_component("data_loader", shared_loader(session))
    session.set_credentials(
        DUMMY_CREDENTIALS["aws_access_key_id"], DUMMY_CREDENTIALS["aws_secret_access_key"]
    )
    session.set_config_variable("region", REGION)
    return session


def make_aioboto3_session() -> Any:
    """A new ``aioboto3.Session`` (dummy credentials, ``us-east-1``) over a fresh AioSession."""
    import aioboto3

    core = make_aio_session()
    session = aioboto3.Session(botocore_session=core, region_name=REGION)
    dedupe_search_paths(core)
    return session


def make_aio_client(
    endpoint_url: str, *, session: Any = None, config: Any = None, **kwargs: Any
) -> Any:
    """An async S3 client context for ``endpoint_url``: ``async with make_aio_client(...) as s3``.

    ``session`` is an ``AioSession`` or an ``aioboto3.Session`` (default: a new AioSession).
    """
    session = session if session is not None else make_aio_session()
    return make_client(endpoint_url, session=session, config=config, **kwargs)
