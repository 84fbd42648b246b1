"""boto3 sessions and S3 clients for a local endpoint: dummy credentials, one region, path-style."""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["DUMMY_CREDENTIALS", "REGION", "make_client", "make_session"]

REGION = "us-east-1"
"""The region of every session and client made here."""
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
"""The credentials of every session and client made here (moto accepts any)."""

# Sessions made here share one botocore loader: parsing S3's service model again
# for every new session costs ~0.2 s, a lot for a test that makes a client or two.
_loader_lock = threading.Lock()
_shared: dict[str, Any] = {}


def make_session() -> Any:
    """A new ``boto3.Session`` with dummy credentials and region ``us-east-1``."""
    import boto3
    import botocore.session

    core = botocore.session.Session()
    with _loader_lock:
        loader = _loader(core)
        core.register_component("data_loader", loader)
        session = boto3.Session(botocore_session=core, region_name=REGION, **DUMMY_CREDENTIALS)
        _dedupe(loader)
    return session


def _dedupe(loader: Any) -> None:
    # Every boto3.Session appends its data directory to the loader's search path.
    search_paths = loader.search_paths
    search_paths[:] = list(dict.fromkeys(search_paths))


def dedupe_search_paths(core: Any) -> None:
    """Drop the duplicate search paths a new boto3-style session added to the shared loader."""
    with _loader_lock:
        _dedupe(core.get_component("data_loader"))


def _loader(core: Any) -> Any:
    from botocore.loaders import create_loader

    loader = _shared.get("loader")
    if loader is None:
        loader = _shared["loader"] = create_loader(core.get_config_variable("data_path"))
    return loader


def shared_loader(core: Any) -> Any:
    """The botocore model loader every session made here shares (made on first use)."""
    with _loader_lock:
        return _loader(core)


def make_client(
    endpoint_url: str, *, session: Any = None, config: Any = None, **kwargs: Any
) -> Any:
    """An S3 client for ``endpoint_url``: see :meth:`LocalS3.client`."""
    from botocore.config import Config

    s3_options = {"addressing_style": "path"}
    if config is not None and getattr(config, "s3", None):
        s3_options.update(config.s3)
    merged = (config or Config()).merge(Config(s3=s3_options))
    session = session if session is not None else make_session()
    create = getattr(session, "client", None) or session.create_client
    options: dict[str, Any] = {"region_name": REGION, **DUMMY_CREDENTIALS, **kwargs}
    return create("s3", endpoint_url=endpoint_url, config=merged, **options)
