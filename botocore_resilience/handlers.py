"""The botocore event handlers: the only module that touches botocore's event ``**kwargs``.

Per logical call::

    before-parameter-build.s3  note the bucket and key (S3 only)
    before-call                admit or reject (CircuitBreakerOpen) before anything is sent
      request-created          per attempt: attempt > 1 is a retry actually made -> count, log
      needs-retry              per attempt: remember why it failed; fill botocore's retry gaps
    after-call                 the call ended with a response: judge it once, record metrics
                               (a streaming body's verdict waits for the body: bodies.py)
    after-call-error           the call ended with an exception: judge it once, record metrics

Per-call state lives in botocore's request ``context`` dict under :data:`CALL_KEY`
(the same dict every event of a call sees), so nothing is shared between calls.

Every handler runs its body through a guard: an error in our own code is logged and
swallowed, and the AWS call goes on as if we were not there. The only exception we
raise on purpose is :class:`CircuitBreakerOpen`, outside the guard.
"""

from __future__ import annotations

from typing import Any, Optional

from botocore.retries.standard import RetryContext

from .bodies import watch_body
from .breaker import SLOW_CAUSE, CircuitBreaker, Outcome, Permit
from .classification import describe_attempt, error_code, judge_exception, judge_response
from .errors import CircuitBreakerOpen
from .leases import probe_lease
from .logs import log_internal_error
from .observers import CIRCUIT_OPEN, ERROR, SUCCESS
from .runtime import Runtime
from .state import begin_call, end_call

__all__ = ["CALL_KEY", "EventHandlers"]

CALL_KEY = "botocore_resilience.call"
_PROBE_KEY = "botocore_resilience.probe"
_TARGET_KEY = "botocore_resilience.target"
_NO_TARGET = ("", None)
_SUCCESS = Outcome.SUCCESS  # an enum member costs an attribute lookup more than a global
_FAILURE = Outcome.FAILURE

_hyphenized: dict[str, str] = {}


def _service_of(model: Any) -> str:
    service_id = model.service_model.service_id
    name = _hyphenized.get(service_id)
    if name is None:
        name = _hyphenized[service_id] = service_id.hyphenize()
    return name  # type: ignore[no-any-return]


class _Call:
    """What we remember about one logical call while botocore works on it."""

    __slots__ = (
        "breaker",
        "bucket",
        "key",
        "operation",
        "permit",
        "reason",
        "sent",
        "service",
        "started",
    )

    def __init__(
        self,
        service: str,
        operation: str,
        bucket: str,
        key: Optional[str],
        breaker: Optional[CircuitBreaker],
        permit: Optional[Permit],
        started: float,
    ) -> None:
        self.service = service
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.breaker = breaker
        self.permit = permit
        self.started = started
        self.reason = ""  # why the latest attempt failed, for the retry log line
        self.sent = False  # an attempt reached the transport (botocore asked needs-retry)


class EventHandlers:
    """Bound methods of one of these are what ``install()`` registers.

    ``runtime`` can be swapped (a second ``install()`` on the same target) or set to
    ``None`` (``uninstall()``): clients that copied these handlers before see the change.
    """

    # Every handler names each keyword botocore passes it, used or not: a handler whose
    # **kwargs stays empty is called about 0.2 µs faster, and they run on every call.
    # **kwargs is still there for keywords a later botocore adds.

    def __init__(self, runtime: Optional[Runtime]) -> None:
        self.runtime = runtime

    # -- before-parameter-build.s3 -------------------------------------------------------

    def on_before_parameter_build(
        self,
        params: Any,
        context: Any = None,
        model: Any = None,
        event_name: Any = None,
        **kwargs: Any,
    ) -> None:
        if self.runtime is None or context is None:
            return
        try:
            bucket = params.get("Bucket")
            key = params.get("Key")
            context[_TARGET_KEY] = (
                bucket if isinstance(bucket, str) else "",
                key if isinstance(key, str) else None,
            )
        except Exception:
            log_internal_error("before-parameter-build")

    # -- before-call -----------------------------------------------------------------------

    def on_before_call(
        self,
        model: Any,
        context: Any = None,
        params: Any = None,
        request_signer: Any = None,
        event_name: Any = None,
        **kwargs: Any,
    ) -> None:
        runtime = self.runtime
        if runtime is None or context is None:
            return None
        try:
            rejection = self._admit(runtime, model, context)
        except Exception:
            log_internal_error("before-call")
            return None
        if rejection is not None:
            raise rejection
        return None

    def _admit(self, runtime: Runtime, model: Any, context: Any) -> Optional[CircuitBreakerOpen]:
        service = _service_of(model)
        operation = model.name
        bucket, key = context.get(_TARGET_KEY) or _NO_TARGET
        circuits = runtime.circuits
        breaker = permit = None
        if circuits is not None:
            breaker = circuits.breaker_for(service, context.get("client_region"), operation, bucket)
            if runtime.shared_state:
                begin_call(context.get("client_config"))
            admitted = breaker.admit()
            if isinstance(admitted, Permit):
                permit = admitted
                if permit.probe_id:
                    _tie_probe_to_call(breaker, permit, context)
            elif operation in runtime.exempt:
                # Cleanup (AbortMultipartUpload, ...) goes through an open circuit: rejecting
                # it would leave behind what a failed operation began. Counted like any call
                # in the metrics; the open circuit does not hear of it (it is no probe).
                breaker = None
            else:
                if runtime.shared_state:
                    end_call()  # rejected: no after-call comes
                observers = runtime.observers
                try:  # may raise: see Observers.call_finished
                    observers.call_finished(service, operation, bucket, CIRCUIT_OPEN, None)
                except Exception:
                    log_internal_error(observers.call_finished_by)
                return CircuitBreakerOpen(
                    circuit_name=breaker.name,
                    service=service,
                    operation=operation,
                    retry_after=admitted,
                )
        # runtime.now and the call_finished below are attributes holding functions, not
        # methods: read first, then called, they skip a lookup that Python's method-call
        # path cannot specialise for them (about 20 ns each on 3.11).
        now = runtime.now
        started = now()
        context[CALL_KEY] = _Call(service, operation, bucket, key, breaker, permit, started)
        return None

    # -- request-created (per attempt) -------------------------------------------------------

    def on_request_created(
        self, request: Any, operation_name: Any = None, event_name: Any = None, **kwargs: Any
    ) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        try:
            context = getattr(request, "context", None)
            if not context:
                return
            retries = context.get("retries")
            attempt = retries.get("attempt", 1) if retries else 1
            if attempt <= 1:
                return  # the common case: a first attempt is no retry
            call = context.get(CALL_KEY)
            if call is None:
                return
            runtime.observers.retry_made(
                call.service, call.operation, call.bucket, call.key, attempt - 1, call.reason
            )
        except Exception:
            log_internal_error("request-created")

    # -- needs-retry (per attempt) -----------------------------------------------------------

    def on_needs_retry(
        self,
        response: Any = None,
        attempts: int = 1,
        caught_exception: Optional[BaseException] = None,
        request_dict: Any = None,
        operation: Any = None,
        endpoint: Any = None,
        event_name: Any = None,
        **kwargs: Any,
    ) -> Optional[float]:
        runtime = self.runtime
        if runtime is None or request_dict is None:
            return None
        try:
            context = request_dict.get("context") or {}
            call = context.get(CALL_KEY)
            if call is None:
                return None
            call.sent = True
            if response is not None and response[0].status_code < 400:
                return None  # the common case: nothing failed
            # One value per failed attempt, as botocore's own handler builds: every question
            # below (why it failed, legacy mode, attempts left, botocore's own conditions,
            # the backoff) reads it.
            retry_context = _retry_context(attempts, operation, response, caught_exception, context)
            call.reason = describe_attempt(
                response[0].status_code if response is not None else None,
                error_code(retry_context.parsed_response),
                caught_exception,
            )
            return runtime.gap_filler.delay(retry_context)
        except Exception:
            log_internal_error("needs-retry")
            return None

    # -- after-call / after-call-error --------------------------------------------------------

    def on_after_call(
        self,
        http_response: Any = None,
        parsed: Any = None,
        context: Any = None,
        model: Any = None,
        event_name: Any = None,
        **kwargs: Any,
    ) -> None:
        runtime = self.runtime
        if runtime is None or context is None:
            return
        try:
            call = context.pop(CALL_KEY, None)
            if call is None:
                return
            status = http_response.status_code
            if status < 300 and not (parsed and parsed.get("Error")):
                # The common case, judged without the general path: a 2xx without an
                # error code is a success, and a success's cause is never used. A streaming
                # body (GetObject) has the last word: see bodies.py.
                body = parsed.get("Body") if parsed else None
                self._finish(runtime, call, _SUCCESS, "", SUCCESS, body)
            else:
                code = error_code(parsed)
                self._finish(
                    runtime,
                    call,
                    judge_response(status, code),
                    describe_attempt(status, code, None),
                    SUCCESS if status < 300 else ERROR,
                )
            metadata = parsed.get("ResponseMetadata") if parsed else None
            if metadata and metadata.get("RetryQuotaReached"):
                runtime.observers.quota_exhausted(call.service, call.operation)
        except Exception:
            log_internal_error("after-call")
        finally:
            if runtime.shared_state:
                end_call()

    def on_after_call_error(
        self,
        exception: Optional[BaseException] = None,
        context: Any = None,
        event_name: Any = None,
        **kwargs: Any,
    ) -> None:
        runtime = self.runtime
        if runtime is None or context is None:
            return
        try:
            call = context.pop(CALL_KEY, None)
            if call is None:
                return
            outcome = judge_exception(exception) if exception is not None else Outcome.NOT_COUNTED
            self._finish(runtime, call, outcome, describe_attempt(None, None, exception), ERROR)
        except Exception:
            log_internal_error("after-call-error")
        finally:
            if runtime.shared_state:
                end_call()

    @staticmethod
    def _finish(
        runtime: Runtime,
        call: _Call,
        outcome: Outcome,
        cause: str,
        result: str,
        body: Any = None,
    ) -> None:
        # A call that never reached the transport has no duration sample.
        # An injected clock that goes back must not give a negative duration.
        if call.sent:
            now = runtime.now  # read apart from the call: see _admit
            duration: Optional[float] = max(0.0, now() - call.started)
        else:
            duration = None
        # The circuit first: the breaker must hear the outcome even if an observer is broken.
        breaker = call.breaker
        if breaker is not None:
            slow = runtime.settings.slow_call_duration
            if slow is not None and duration is not None and duration > slow:
                # Too slow to be of use, whatever it returned: a failure for the breaker
                # only. The caller still gets its result, and ``result`` stays what the
                # caller saw (docs/explanation/failure-rate-and-slow-calls.md).
                outcome = _FAILURE
                cause = _slow_cause(duration, slow, cause)
            elif body is not None:
                outcome = watch_body(body, breaker, call.permit)
            breaker.record(call.permit, outcome, cause)
        observers = runtime.observers
        call_finished = observers.call_finished
        try:  # may raise: see Observers.call_finished
            call_finished(call.service, call.operation, call.bucket, result, duration)
        except Exception:
            log_internal_error(observers.call_finished_by)


def _slow_cause(duration: float, slow: float, cause: str) -> str:
    """The cause a slow call reports: it begins with "slow call", and keeps the error of a
    call that also failed."""
    took = f"{SLOW_CAUSE}: {duration:.3g} s > slow_call_duration {slow:g} s"
    return f"{took}; {cause}" if cause else took


def _retry_context(
    attempts: int, operation: Any, response: Any, exception: Any, context: Any
) -> RetryContext:
    http, parsed = response if response is not None else (None, None)
    return RetryContext(
        attempt_number=attempts,
        operation_model=operation,
        parsed_response=parsed,
        http_response=http,
        caught_exception=exception,
        request_context=context,
    )


def _tie_probe_to_call(breaker: CircuitBreaker, permit: Permit, context: Any) -> None:
    # A half-open probe's slot is its call's for as long as the call lives. The request
    # context lives exactly that long, however the call ends (even where no after-call or
    # after-call-error event comes: another handler raising, a failing body checksum,
    # KeyboardInterrupt in the transport, handlers uninstalled mid-call), so the guard kept
    # in it frees the slot when the call is gone. The lease covers a call nobody sees end.
    context[_PROBE_KEY] = breaker.probe_guard(permit)
    breaker.set_lease(permit, probe_lease(context.get("client_config")))
