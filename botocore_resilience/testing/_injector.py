"""Faults for any botocore client, injected inside botocore's retry loop.

A :class:`FaultInjector` answers botocore's ``before-send`` event, the last
step of every attempt before the HTTP request would go out. Returning a
response there (or raising a connection error) is indistinguishable, for
botocore's retry handler and everything hooked after it, from the service
sending that answer: each fault is one attempt, retried or not as botocore
decides.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from botocore.awsrequest import AWSResponse

from ._faults import ConnectionFault, Fault, HTTPFault, render
from ._rules import FaultRule, RuleBook

__all__ = ["FaultInjector"]

# While an injected answer is being returned, the request's URL points here, so that
# later before-send handlers that would answer it too (moto's mock_aws) leave it alone.
_HIDDEN_HOST = "fault-injected.botocore-resilience.invalid"

# The request this thread has answered with a fault and hidden, with its real URL.
# Module-wide so that a second injector on the same client leaves it alone too.
_answered = threading.local()


class FaultInjector:
    """Inject faults into botocore clients: each one is an attempt botocore retries (or not).

    ``targets`` are botocore clients (only that client is affected) or boto3 /
    botocore sessions (every client created from the session *afterwards*,
    as botocore copies a session's handlers into a client when creating it).

    >>> import boto3
    >>> from botocore_resilience.testing import FaultInjector, SLOW_DOWN, READ_TIMEOUT
    >>> s3 = boto3.client("s3", region_name="us-east-1")
    >>> with FaultInjector(s3) as faults:  # doctest: +SKIP
    ...     faults.inject(SLOW_DOWN, times=2, operation="GetObject")
    ...     faults.inject(READ_TIMEOUT, times=None, operation="PutObject")  # until removed
    ...     s3.get_object(Bucket="b", Key="k")  # two 503s, then the real answer
    ...     faults.injected
    2

    With ``moto.mock_aws``: the injector registers first on ``before-send``,
    and a request it answers is hidden from moto (whose handler botocore calls
    as well), so a fault has no side effect in moto's store: a ``PutObject``
    answered with ``SlowDown`` stores nothing.
    """

    def __init__(self, *targets: Any) -> None:
        self._rules: RuleBook[Fault] = RuleBook()
        self._lock = threading.Lock()
        self._emitters: list[Any] = []
        self._protocols: dict[str, str] = {}  # hyphenized service id -> botocore protocol
        self._id = f"botocore_resilience.testing.FaultInjector.{id(self)}"
        for target in targets:
            self.install(target)

    def install(self, target: Any) -> FaultInjector:
        """Also inject into ``target`` (a client or a session); idempotent. Returns ``self``."""
        emitter = _emitter_of(target)
        service_model = getattr(getattr(target, "meta", None), "service_model", None)
        if service_model is not None:
            self._learn(service_model)
        emitter.register_first("before-send", self._before_send, unique_id=self._id + ".send")
        emitter.register_last("before-send", _unhide, unique_id=self._id + ".unhide")
        emitter.register("before-call", self._before_call, unique_id=self._id + ".call")
        with self._lock:
            if not any(e is emitter for e in self._emitters):
                self._emitters.append(emitter)
        return self

    def uninstall(self) -> None:
        """Unregister from every target and remove every fault (idempotent).

        Clients created from an installed session before this call keep a copy
        of the handler, which now does nothing.
        """
        self._rules.clear()
        with self._lock:
            emitters, self._emitters = self._emitters, []
        for emitter in emitters:
            emitter.unregister("before-send", unique_id=self._id + ".send")
            emitter.unregister("before-send", unique_id=self._id + ".unhide")
            emitter.unregister("before-call", unique_id=self._id + ".call")

    def inject(
        self,
        fault: Fault,
        *,
        times: Optional[int] = 1,
        operation: Optional[str] = None,
        service: Optional[str] = None,
    ) -> FaultRule[Fault]:
        """Fail the next ``times`` matching attempts with ``fault`` (``times=None``: until removed).

        ``operation`` is botocore's operation name (``"GetObject"``), ``service``
        its hyphenized service id (``"s3"``, ``"dynamodb"``); ``None`` matches
        all. Rules are tried in the order they were added.
        """
        if not isinstance(fault, (HTTPFault, ConnectionFault)):
            raise TypeError(f"fault must be an HTTPFault or a ConnectionFault, not {fault!r}")
        return self._rules.add(fault, times, {"operation": operation, "service": service})

    # The rule vocabulary is LocalS3's: inject(), clear_faults(), faults, faults_injected.

    def clear_faults(self) -> None:
        """Remove every fault; the injector stays installed."""
        self._rules.clear()

    def clear(self) -> None:
        """The same as :meth:`clear_faults`."""
        self._rules.clear()

    @property
    def faults(self) -> list[FaultRule[Fault]]:
        """The rules that can still fire, in the order they are tried."""
        return self._rules.rules

    @property
    def faults_injected(self) -> int:
        """How many attempts this injector has failed."""
        return self._rules.injected

    @property
    def injected(self) -> int:
        """The same as :attr:`faults_injected`."""
        return self._rules.injected

    def __enter__(self) -> FaultInjector:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.uninstall()

    def __repr__(self) -> str:
        return f"FaultInjector(faults={len(self.faults)}, injected={self.injected})"

    # -- botocore event handlers ---------------------------------------------------------------

    def _before_call(self, model: Any = None, **_: Any) -> None:
        # A session-wide injector learns each service's protocol from its first call.
        if model is not None:
            self._learn(model.service_model)

    def _before_send(self, request: Any, event_name: str, **kwargs: Any) -> Optional[AWSResponse]:
        with self._lock:
            if not self._emitters:
                return None  # uninstalled; a client copied from a session still calls us
        if getattr(_answered, "request", None) is request:
            return None  # another injector already answered this attempt
        # "before-send.s3.GetObject"
        _, service, operation = [*event_name.split(".", 2), "", ""][:3]
        fault = self._rules.take({"service": service, "operation": operation})
        if fault is None:
            return None
        if isinstance(fault, ConnectionFault):
            raise fault.exception(request.url)
        wire = render(
            fault,
            protocol=self._protocol(service, request),
            service_id=service,
            method=request.method,
        )
        response = AWSResponse(request.url, wire.status, dict(wire.headers), _RawBody(wire.body))
        _answered.request, _answered.url = request, request.url
        request.url = urlunsplit(urlsplit(request.url)._replace(netloc=_HIDDEN_HOST))
        return response

    def _learn(self, service_model: Any) -> None:
        service_id = service_model.service_id.hyphenize()
        try:  # botocore >= 1.38 picks one of several protocols a service offers
            protocol = service_model.resolved_protocol
        except Exception:
            protocol = service_model.protocol
        with self._lock:
            self._protocols[service_id] = protocol

    def _protocol(self, service_id: str, request: Any) -> str:
        with self._lock:
            known = self._protocols.get(service_id)
        if known:
            return known
        return "json" if "X-Amz-Target" in request.headers else "rest-xml"  # a fair guess


def _unhide(request: Any, **_: Any) -> None:
    """Registered last on before-send: give the answered request its real URL back."""
    answered: Any = getattr(_answered, "request", None)
    if answered is not None and answered is request:
        answered.url = _answered.url
        _answered.request = _answered.url = None


def _emitter_of(target: Any) -> Any:
    meta = getattr(target, "meta", None)
    if meta is not None and hasattr(meta, "events"):
        return meta.events  # a botocore client
    if hasattr(target, "get_component"):
        return target.get_component("event_emitter")  # a botocore session
    if hasattr(target, "events"):
        return target.events  # a boto3 session
    raise TypeError(
        f"cannot inject faults into {target!r}: expected a botocore client or a session"
    )


class _RawBody(io.BytesIO):
    """The ``raw`` of an :class:`AWSResponse`: what botocore reads a body from."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()
