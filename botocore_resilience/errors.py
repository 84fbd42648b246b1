"""The two errors that come from this library, and only these two.

Both subclass :class:`botocore.exceptions.BotoCoreError` so that code which
already catches botocore's errors keeps working, and both carry their facts as
attributes (as well as in the message) so callers never parse text.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError

__all__ = ["CircuitBreakerOpen", "ConfigurationError"]


class CircuitBreakerOpen(BotoCoreError):
    """A call was rejected, before anything was sent, because its circuit is open.

    Deliberately *not* a subclass of botocore's ``ConnectionError`` or
    ``HTTPClientError``: botocore retries those, and retrying a rejection would
    defeat the point of failing fast.

    Attributes:
        circuit_name: the circuit that rejected the call, e.g. ``"s3/us-east-1"``.
        service: botocore's hyphenized service id, e.g. ``"s3"``.
        operation: the operation name, e.g. ``"GetObject"``.
        retry_after: seconds after which trying again makes sense, always > 0. While the
            circuit is open: the time left until it lets a probe through. While it is
            half-open with every probe slot taken: an estimate, as long as the longest-running
            probe has been in flight (at least 0.1 s), since nobody knows when a probe ends.
            While an operator holds it open (``force_open()``): the longest open period.
            See docs/explanation/retry-and-breaker.md.

    >>> err = CircuitBreakerOpen(
    ...     circuit_name="s3/us-east-1", service="s3", operation="GetObject", retry_after=12.5)
    >>> err.retry_after
    12.5
    >>> str(err)
    'Circuit s3/us-east-1 is open: s3 GetObject was not sent; next probe in 12.5 s'
    """

    fmt = (
        "Circuit {circuit_name} is open: {service} {operation} was not sent; "
        "next probe in {retry_after:.1f} s"
    )

    def __init__(
        self, *, circuit_name: str, service: str, operation: str, retry_after: float, **kwargs: Any
    ) -> None:
        super().__init__(
            circuit_name=circuit_name,
            service=service,
            operation=operation,
            retry_after=retry_after,
            **kwargs,
        )
        self.circuit_name = circuit_name
        self.service = service
        self.operation = operation
        self.retry_after = retry_after


class ConfigurationError(BotoCoreError, ValueError):
    """A setting has a value this library cannot use.

    Raised by ``install()`` before it registers anything.

    Attributes:
        variable: the environment variable (or keyword option) that holds the bad value.
        value: the value as given.
        accepted: what the setting accepts, in words.

    >>> err = ConfigurationError(
    ...     variable="BOTOCORE_RESILIENCE_FAILURE_THRESHOLD", value="0", accepted="an integer >= 1")
    >>> isinstance(err, ValueError)
    True
    >>> str(err)
    "BOTOCORE_RESILIENCE_FAILURE_THRESHOLD='0' is not valid: expected an integer >= 1"
    """

    fmt = "{variable}={value!r} is not valid: expected {accepted}"

    def __init__(self, *, variable: str, value: object, accepted: str, **kwargs: Any) -> None:
        BotoCoreError.__init__(self, variable=variable, value=value, accepted=accepted, **kwargs)
        self.variable = variable
        self.value = value
        self.accepted = accepted
