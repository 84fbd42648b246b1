"""A stub transport: a ``before-send`` handler that answers in place of the network.

For unit tests and benchmarks that need a botocore client to get a response without any
I/O (what a test about the plugin's claims needs is :class:`~.LocalS3`, over real HTTP).
Register it where the test needs it, usually last, so that every other ``before-send``
handler (the plugin's among them) runs first, as it would before a real send::

    client.meta.events.register_last("before-send.s3", StubTransport(503))
    client.meta.events.register_last("before-send.s3", StubTransport(lambda request: 200))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Callable, Optional, Union

from botocore.awsrequest import AWSResponse

__all__ = ["StubTransport"]

Answer = Union[int, BaseException]
"""A status to answer with, or an exception to raise as the transport would."""


class _Body:
    """What ``AWSResponse.raw`` must offer: a ``stream()`` of the body's bytes."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self._body


class StubTransport:
    """Answers every request with ``answer`` (a status, an exception to raise, or a function
    of the botocore request returning either), with ``headers`` and ``body``."""

    def __init__(
        self,
        answer: Union[Answer, Callable[[Any], Answer]] = 200,
        *,
        headers: Optional[Mapping[str, str]] = None,
        body: bytes = b"",
    ) -> None:
        self._answer = answer
        self._headers = dict(headers or {})
        self._body = body

    def __call__(self, request: Any = None, **_kwargs: Any) -> AWSResponse:
        answer = self._answer(request) if callable(self._answer) else self._answer
        if isinstance(answer, BaseException):
            raise answer
        return AWSResponse(request.url, answer, dict(self._headers), _Body(self._body))
