"""A real S3 on 127.0.0.1: moto's server app behind a fault layer, in a background thread.

moto and werkzeug are imported when a server first starts, never at import
time, so ``import botocore_resilience.testing`` works without the ``testing``
extra.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from types import TracebackType
from typing import Any, Optional, Union

from ._clients import make_client, make_session
from ._counter import RequestCounter
from ._fault_layer import INTERNAL_HEADER, FaultLayer, WSGIApp
from ._faults import BodyFault, HTTPFault
from ._hold import Hold
from ._rules import FaultRule, RuleBook
from ._serving import BackgroundServer

__all__ = ["LocalS3"]

_logger = logging.getLogger("botocore_resilience.testing")

# The most stop() waits for requests in flight to finish once their connections are cut.
_DRAIN_TIMEOUT = 5.0


class LocalS3:
    """A local S3 (moto) served over real HTTP on ``127.0.0.1``, with faults on demand.

    The port is chosen when the server first starts and kept across
    :meth:`stop`/:meth:`start`, so a stopped server refuses connections on the
    very port its clients use (botocore raises ``EndpointConnectionError``) and a
    restarted one serves them again.

    >>> from botocore_resilience.testing import LocalS3, SLOW_DOWN
    >>> with LocalS3() as s3:  # doctest: +SKIP
    ...     client = s3.client()
    ...     bucket = s3.create_bucket()
    ...     s3.inject(SLOW_DOWN, times=2, operation="PutObject")
    ...     client.put_object(Bucket=bucket, Key="k", Body=b"v")  # retried twice by botocore
    ...     s3.requests.count(operation="PutObject")
    3

    State: moto keeps its data in process-global stores. Each server gets its
    own AWS account id (``account_id``), which keeps its buckets apart from other
    servers' and from ``mock_aws`` (default account) in listings, but bucket
    *names* are global, as in AWS, and ``moto.mock_aws`` wipes every store,
    this server's included, when it starts and when it stops. Use
    :meth:`clear_storage` to drop this server's buckets.

    Thread-safe: every method may be called from any thread, and the server
    handles each request in its own thread.
    """

    def __init__(self, *, port: int = 0, account_id: Optional[str] = None) -> None:
        """``port=0`` (the default) picks a free port at the first :meth:`start`."""
        self._host = "127.0.0.1"
        self.account_id = account_id or str(random.randrange(10**11, 10**12))
        self._rules: RuleBook[Union[HTTPFault, BodyFault]] = RuleBook()
        self._holds: RuleBook[Hold] = RuleBook()
        self._counter = RequestCounter()
        self._stopping = threading.Event()
        self._lifecycle = threading.RLock()
        self._layer = FaultLayer(
            account_id=self.account_id,
            rules=self._rules,
            counter=self._counter,
            stopping=self._stopping,
            holds=self._holds,
        )
        self._server = BackgroundServer(self._layer, host=self._host, port=port, name="LocalS3")
        self._internal: Any = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> LocalS3:
        """Start serving (idempotent); returns ``self``. Raises ``OSError`` if the port is taken."""
        with self._lifecycle:
            if self._server.running:
                return self
            if self._layer.app is None:
                self._layer.app = _moto_app(self.account_id)
            self._stopping.clear()
            self._server.start()
            _logger.debug("LocalS3 serving on %s", self.endpoint_url)
            return self

    def stop(self) -> None:
        """Stop serving (idempotent): new connections are refused, open ones are closed.

        Requests held back by :attr:`latency` are cut short, and recorded in
        :attr:`requests` (with ``status=None``) by the time this returns. The
        port stays this server's: :meth:`start` binds it again.
        """
        with self._lifecycle:
            if not self._server.running:
                return
            self._server.stop()
            for hold in self._holds.rules:
                hold.fault.release()
            self._holds.clear()
            # Only now, so that a request cut short in its latency wait finds its connection
            # gone: the client sees the connection drop, not an answer.
            self._stopping.set()
            # Let the requests just cut short be recorded, so that a test sees them as soon
            # as stop() returns. Bounded: a request stuck in moto must not hang stop().
            self._layer.wait_for_idle(timeout=_DRAIN_TIMEOUT)
            _logger.debug("LocalS3 on port %s stopped", self._server.port)

    @property
    def running(self) -> bool:
        """``True`` between :meth:`start` and :meth:`stop`."""
        with self._lifecycle:
            return self._server.running

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    # -- where it is ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (known once the server has started)."""
        port = self._server.port
        if not port:
            raise RuntimeError("LocalS3 has no port until it has been started")
        return port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``: pass it as boto3's ``endpoint_url``."""
        return f"http://{self._host}:{self.port}"

    # -- faults, latency, counting -------------------------------------------------------------

    def inject(
        self,
        fault: Union[HTTPFault, BodyFault],
        *,
        times: Optional[int] = 1,
        method: Optional[str] = None,
        bucket: Optional[str] = None,
        key: Optional[str] = None,
        operation: Optional[str] = None,
        part_number: Optional[int] = None,
    ) -> FaultRule[Union[HTTPFault, BodyFault]]:
        """Answer the next ``times`` matching requests with ``fault`` (``None``: until cleared).

        Filters left ``None`` match every request; ``operation`` is the S3
        operation name (``"GetObject"``), ``part_number`` the part of an
        ``UploadPart`` or a ranged ``GetObject`` by part. Rules are tried in the
        order they were added, and the first that matches answers the request. A
        :class:`BodyFault` lets the request through and cuts its response's body short.

        >>> s3.inject(SLOW_DOWN, times=3)  # doctest: +SKIP
        >>> s3.inject(INTERNAL_ERROR, times=None, method="PUT", bucket="b")  # doctest: +SKIP
        >>> s3.inject(STALLED_BODY, operation="GetObject")  # doctest: +SKIP
        """
        if not isinstance(fault, (HTTPFault, BodyFault)):
            raise TypeError(
                "LocalS3 injects HTTPFault responses and BodyFault bodies; for connection "
                f"refusal use stop(), for other connection errors FaultInjector (got {fault!r})"
            )
        return self._rules.add(fault, times, _criteria(method, bucket, key, operation, part_number))

    def hold(
        self,
        *,
        times: Optional[int] = None,
        method: Optional[str] = None,
        bucket: Optional[str] = None,
        key: Optional[str] = None,
        operation: Optional[str] = None,
        part_number: Optional[int] = None,
    ) -> Hold:
        """Hold matching requests at the server, their bodies unread, until the returned
        :class:`Hold` is released (``times``: how many requests at most; ``None``: all).

        Filters as for :meth:`inject`. Held requests then meet the injected faults as usual.

        >>> hold = s3.hold(operation="UploadPart", part_number=2)  # doctest: +SKIP
        >>> hold.wait_for_held(1)  # doctest: +SKIP
        True
        >>> hold.release()  # doctest: +SKIP
        """
        held = Hold()
        self._holds.add(held, times, _criteria(method, bucket, key, operation, part_number))
        return held

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        self._rules.clear()

    @property
    def faults(self) -> list[FaultRule[Union[HTTPFault, BodyFault]]]:
        """The fault rules that can still fire, in the order they are tried."""
        return self._rules.rules

    @property
    def faults_injected(self) -> int:
        """How many responses were faults since the last :meth:`reset`."""
        return self._rules.injected

    @property
    def latency(self) -> float:
        """Seconds every request is held back before it is answered (default ``0``).

        The only deliberate delay in this module; a :meth:`stop` cuts it short.
        """
        return self._layer.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._layer.latency = seconds

    @property
    def in_flight(self) -> int:
        """Requests the server has received and not yet answered (held by latency, say)."""
        return self._layer.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests the server held at once since the last :meth:`reset`: what a
        test reads to show how many calls reached the service together (with :attr:`latency`
        set, calls overlap at the server for that long)."""
        return self._layer.peak_in_flight

    def wait_for_in_flight(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` requests are in flight; ``False`` if ``timeout`` passes.

        For tests that act while a call is held by :attr:`latency`, without sleeping:

        >>> s3.latency = 30  # doctest: +SKIP
        >>> call = threading.Thread(target=client.list_buckets)  # doctest: +SKIP
        >>> call.start()  # doctest: +SKIP
        >>> s3.wait_for_in_flight(1)  # doctest: +SKIP
        True
        >>> s3.stop()  # the held call sees its connection drop  # doctest: +SKIP
        """
        return self._layer.wait_for_in_flight(count, timeout)

    @property
    def requests(self) -> RequestCounter:
        """Every request that reached the server (refused connections never do)."""
        return self._counter

    def reset(self) -> None:
        """Clear faults and latency, forget recorded requests and :attr:`max_in_flight`;
        stored data stays."""
        self._rules.clear()
        self._rules.reset_count()
        for hold in self._holds.rules:
            hold.fault.release()
        self._holds.clear()
        self.latency = 0.0
        self._counter.reset()
        self._layer.reset_peak()

    # -- clients and data ----------------------------------------------------------------------

    def session(self) -> Any:
        """A new ``boto3.Session`` with dummy credentials and region ``us-east-1``.

        Sessions made here share botocore's model loader, so making one is cheap.
        """
        return make_session()

    def client(self, *, session: Any = None, config: Any = None, **kwargs: Any) -> Any:
        """A boto3 S3 client for this server: dummy credentials, ``us-east-1``, path-style.

        ``session`` (a boto3 or botocore session, default :meth:`session`) is
        where the client comes from: pass one on which
        ``botocore_resilience.install()`` ran. ``config`` is merged with
        ``Config(s3={"addressing_style": "path"})``. No retry settings are set
        here, so the retry mode and attempts are whatever the session, the
        environment or the installed plugin choose. Other keyword arguments go
        to ``client()``.

        >>> from botocore.config import Config
        >>> client = s3.client(config=Config(retries={"total_max_attempts": 1}))  # doctest: +SKIP
        """
        return make_client(self.endpoint_url, session=session, config=config, **kwargs)

    def aio_session(self) -> Any:
        """A new ``aiobotocore.session.AioSession`` (dummy credentials, ``us-east-1``).

        Needs aiobotocore (extra ``aio``). :meth:`aioboto3_session` is the aioboto3 one.
        """
        from ._aio_clients import make_aio_session

        return make_aio_session()

    def aioboto3_session(self) -> Any:
        """A new ``aioboto3.Session`` (dummy credentials, ``us-east-1``); needs aioboto3."""
        from ._aio_clients import make_aioboto3_session

        return make_aioboto3_session()

    def aio_client(self, *, session: Any = None, config: Any = None, **kwargs: Any) -> Any:
        """An aiobotocore S3 client for this server, as an async context manager.

        Like :meth:`client`; ``session`` is an ``AioSession`` or an ``aioboto3.Session``
        (default: a new :meth:`aio_session`)::

            async with s3.aio_client(session=session) as client:
                await client.head_bucket(Bucket=bucket)
        """
        from ._aio_clients import make_aio_client

        return make_aio_client(self.endpoint_url, session=session, config=config, **kwargs)

    def create_bucket(self, name: Optional[str] = None) -> str:
        """Create a bucket (a fresh unique name by default) and return its name.

        Goes around faults, latency and the request counter.
        """
        name = name or f"test-{uuid.uuid4().hex}"
        self._internal_client().create_bucket(Bucket=name)
        return name

    def clear_storage(self) -> None:
        """Delete every bucket of this server's account, with its objects, versions and uploads.

        Goes around faults, latency and the request counter.
        """
        s3 = self._internal_client()
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
                doomed = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                ]
                if doomed:
                    s3.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})
            for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
                s3.abort_multipart_upload(
                    Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            s3.delete_bucket(Bucket=name)

    def __repr__(self) -> str:
        where = self.endpoint_url if self._server.port else "not started"
        state = "running" if self.running else "stopped"
        return f"LocalS3({where}, {state}, account_id={self.account_id!r})"

    # -- internals -----------------------------------------------------------------------------

    def _internal_client(self) -> Any:
        with self._lifecycle:
            if not self.running:
                raise RuntimeError("LocalS3 is stopped; start() it first")
            if self._internal is None:
                from botocore.config import Config

                client = self.client(
                    config=Config(
                        retries={"mode": "standard", "total_max_attempts": 1},
                        connect_timeout=5,
                        read_timeout=30,
                    )
                )
                client.meta.events.register("before-sign.s3", _mark_internal)
                self._internal = client
            return self._internal


def _criteria(
    method: Optional[str],
    bucket: Optional[str],
    key: Optional[str],
    operation: Optional[str],
    part_number: Optional[int],
) -> dict[str, Optional[str]]:
    return {
        "method": method.upper() if method else None,
        "bucket": bucket,
        "key": key,
        "operation": operation,
        "part_number": None if part_number is None else str(part_number),
    }


def _mark_internal(request: Any, **_: Any) -> None:
    request.headers[INTERNAL_HEADER] = "1"


def _moto_app(account_id: str) -> WSGIApp:
    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            create_backend_app,
        )
        from werkzeug.test import Client
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "LocalS3 needs moto's server: pip install 'botocore-resilience[testing]'"
        ) from error
    app: WSGIApp = DomainDispatcherApplication(create_backend_app)
    # Build moto's S3 app now (a ListBuckets in-process), so that the first real
    # request, maybe made with a short read timeout, is not the one that waits for it.
    Client(app).get("/", headers={"x-moto-account-id": account_id})
    return app
