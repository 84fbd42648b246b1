"""The OpenTelemetry metrics sink: the six families through the OpenTelemetry metrics API.

Chosen with ``metrics="otel"`` (``BOTOCORE_RESILIENCE_METRICS=otel``), for processes
that nothing scrapes: a Lambda invocation, a CLI run, a batch job. It receives exactly
the calls the Prometheus sink receives (the same ``MetricsSink`` methods), so its points
equal the Prometheus samples for the same calls. ``N`` is ``metrics_namespace``:

* ``N.operations``: observable counter, unit ``{call}``; service, operation, bucket, result
* ``N.operation.duration``: histogram, unit ``s``; service, operation, bucket
* ``N.circuit_breaker.state``: observable gauge, unit ``{state}``; circuit_name
* ``N.circuit_breaker.transitions``: observable counter, unit ``{transition}``;
  circuit_name, from_state, to_state
* ``N.retry.attempts``: counter, unit ``{retry}``; service, operation, attempt
* ``N.retry.quota_exhausted``: counter, unit ``{call}``; service, operation

With a state store (``state_url``), :class:`OtelStoreMetrics` adds the store's two:

* ``N.state_store.up``: observable gauge, unit ``{status}``; backend
* ``N.state_store.errors``: counter, unit ``{error}``; error

Three families are observed, not pushed: their values are kept here (as the Prometheus
sink keeps them) and reported when the reader collects. For the circuit families that means
an evicted circuit's series stop being reported instead of living in the SDK for ever
(synchronous OpenTelemetry instruments have no way to drop a series); for ``N.operations``
it saves the SDK's per-measurement cost on every call (see :class:`OtelMetrics`).

Only this module imports ``opentelemetry`` (the ``otel`` extra installs
``opentelemetry-api``), and only when the sink is chosen.

>>> from opentelemetry.sdk.metrics import MeterProvider
>>> from opentelemetry.sdk.metrics.export import InMemoryMetricReader
>>> reader = InMemoryMetricReader()
>>> sink = otel_metrics_for(MeterProvider(metric_readers=[reader]), "botocore")
>>> sink.call_finished("s3", "GetObject", "photos", "success", 0.042)
>>> sorted(m.name for rm in reader.get_metrics_data().resource_metrics
...        for sm in rm.scope_metrics for m in sm.metrics)
['botocore.operation.duration', 'botocore.operations']
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import Any, Optional

try:
    from opentelemetry import metrics as otel
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
except ImportError as missing:  # pragma: no cover - the otel extra installs it
    raise ImportError(
        "metrics=otel needs the OpenTelemetry metrics API: pip install 'botocore-resilience[otel]'"
    ) from missing

from . import __version__, _fork
from ._owners import CircuitOwners, StatefulCircuit
from .breaker import CircuitState, Transition
from .call_metrics import DURATION_BUCKETS, RESULTS, BucketLabels
from .metrics import DEFAULT_MAX_BUCKETS
from .store.base import ERROR_KINDS

__all__ = [
    "METER_NAME",
    "OtelMetrics",
    "OtelStoreMetrics",
    "is_valid_otel_namespace",
    "otel_metrics_for",
    "otel_store_metrics_for",
]

METER_NAME = "botocore_resilience"
"""The instrumentation scope (meter name) of every instrument; its version is the package's."""

# OpenTelemetry's rule for instrument names, applied to the namespace followed by ".x".
_NAMESPACE = re.compile(r"[a-zA-Z][-_./a-zA-Z0-9]{0,200}\Z")

Attributes = dict[str, str]


class _Count:
    """One ``N.operations`` series: its attributes and its count, kept here.

    ``lock`` is held for one addition (a thread switch inside ``x += 1.0`` loses counts).
    """

    __slots__ = ("attributes", "lock", "value")

    def __init__(self, attributes: Attributes) -> None:
        self.attributes = attributes
        self.lock = _fork.new_lock()
        self.value = 0.0


def is_valid_otel_namespace(namespace: str) -> bool:
    """Whether ``namespace`` can prefix OpenTelemetry instrument names (``""``: no prefix).

    Stricter than Prometheus: no ``:`` and no leading ``_``.
    """
    return namespace == "" or _NAMESPACE.match(namespace) is not None


def _name(namespace: str, name: str) -> str:
    return f"{namespace}.{name}" if namespace else name


class OtelMetrics:
    """The six families on one ``Meter``; get it from :func:`otel_metrics_for`.

    The SDK spends about 9 µs on each synchronous measurement (it cleans and hashes the
    attributes every time), so the family written on every call, ``N.operations``, is
    counted here (a dict lookup and one short-held lock) and observed by the reader,
    like the Prometheus sink's own collector; only the duration, for which the API has
    no observed form, is recorded per call. The rare families (retries, quota) are
    plain counters. Attribute dicts are built once per label set and reused.

    The ``bucket`` attribute is bounded as the Prometheus label is (``max_buckets``
    distinct values, then ``__other__``); calls to buckets past the bound are not cached
    under their own name, so the caches stay bounded too.

    The circuit families follow the Prometheus sink's rules: a circuit given to
    :meth:`circuit_added` owns its name's state until a newer one is added.
    """

    def __init__(
        self, meter: Meter, namespace: str, *, max_buckets: int = DEFAULT_MAX_BUCKETS
    ) -> None:
        self.buckets = BucketLabels(max_buckets)
        # (service, operation, bucket as given, result) -> its count, for buckets within
        # the bound; _by_labels holds every series by its attribute values (under
        # _calls_lock, which only a label set's first call takes).
        self._calls: dict[tuple[str, str, str, str], _Count] = {}
        self._by_labels: dict[tuple[str, str, str, str], _Count] = {}
        self._calls_lock = _fork.new_lock()
        meter.create_observable_counter(
            _name(namespace, "operations"),
            callbacks=[self._observe_operations],
            unit="{call}",
            description="Logical AWS calls (retries included), by result: "
            "success, error, circuit_open.",
        )
        self._duration = meter.create_histogram(
            _name(namespace, "operation.duration"),
            unit="s",
            description="Wall time of each logical AWS call that was sent, "
            "retries and backoff included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._retries = meter.create_counter(
            _name(namespace, "retry.attempts"),
            unit="{retry}",
            description='Retries actually made; attempt is "1" for the first retry of a call.',
        )
        self._quota_exhausted = meter.create_counter(
            _name(namespace, "retry.quota_exhausted"),
            unit="{call}",
            description="Calls on which botocore's retry quota ran out.",
        )
        # Kept here, reported when the reader collects; guarded by _circuit_lock.
        self._circuit_lock = _fork.new_lock()
        self._owners = CircuitOwners()
        self._states: dict[str, int] = {}
        self._transitions: dict[str, dict[tuple[str, str], int]] = {}
        meter.create_observable_gauge(
            _name(namespace, "circuit_breaker.state"),
            callbacks=[self._observe_states],
            unit="{state}",
            description="Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        )
        meter.create_observable_counter(
            _name(namespace, "circuit_breaker.transitions"),
            callbacks=[self._observe_transitions],
            unit="{transition}",
            description="Circuit breaker state changes (closed, open, half_open).",
        )
        self._series_attributes: dict[tuple[str, str, str], Attributes] = {}
        self._retry_attributes: dict[tuple[str, str, int], Attributes] = {}
        self._quota_attributes: dict[tuple[str, str], Attributes] = {}

    # -- per call (hot path) ------------------------------------------------------------

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None:
        """Count one logical call; record its duration unless it was never sent (``None``)."""
        count = self._calls.get((service, operation, bucket, result))
        if count is None:
            count = self._first_call(service, operation, bucket, result)
        with count.lock:
            count.value += 1.0
        if duration is None:
            return
        series = self._series_attributes.get((service, operation, bucket))
        if series is None:
            label = self.buckets.label(bucket)
            series = {"service": service, "operation": operation, "bucket": label}
            if label == bucket:
                series = self._series_attributes.setdefault((service, operation, bucket), series)
        self._duration.record(duration, series)

    def _first_call(self, service: str, operation: str, bucket: str, result: str) -> _Count:
        if result not in RESULTS:
            raise ValueError(f"result must be one of {sorted(RESULTS)}, not {result!r}")
        label = self.buckets.label(bucket)
        labels = (service, operation, label, result)
        with self._calls_lock:
            count = self._by_labels.get(labels)
            if count is None:
                count = self._by_labels[labels] = _Count(
                    {"service": service, "operation": operation, "bucket": label, "result": result}
                )
            if label == bucket:  # past the bound: never cached under its own name
                self._calls[(service, operation, bucket, result)] = count
        return count

    def retry_made(self, service: str, operation: str, attempt: int) -> None:
        """Count one retry actually made; ``attempt`` is 1 for a call's first retry."""
        attributes = self._retry_attributes.get((service, operation, attempt))
        if attributes is None:
            if attempt < 1:
                raise ValueError(f"attempt counts retries from 1, not {attempt!r}")
            attributes = self._retry_attributes.setdefault(
                (service, operation, attempt),
                {"service": service, "operation": operation, "attempt": str(attempt)},
            )
        self._retries.add(1, attributes)

    def quota_exhausted(self, service: str, operation: str) -> None:
        """Count one call on which botocore's retry quota ran out."""
        attributes = self._quota_attributes.get((service, operation))
        if attributes is None:
            attributes = self._quota_attributes.setdefault(
                (service, operation), {"service": service, "operation": operation}
            )
        self._quota_exhausted.add(1, attributes)

    # -- per circuit (rare) -------------------------------------------------------------

    def circuit_added(
        self, circuit_name: str, state: CircuitState, circuit: Optional[StatefulCircuit] = None
    ) -> None:
        """Report a new circuit's state. With ``circuit``, it owns the state from now on;
        without it, its transitions will count their ``seq`` from 1."""
        with self._circuit_lock:
            state = self._owners.add(circuit_name, state, circuit)
            self._states[circuit_name] = state.gauge_value

    def transition(self, transition: Transition) -> None:
        """Count a state change, and bring the reported state up to date.

        The breaker notifies outside its lock, so two threads may deliver its
        transitions in either order: with an owner, its state as it is now is reported;
        without one, ``seq`` says which transition is newer.
        """
        name = transition.circuit_name
        key = (transition.from_state.value, transition.to_state.value)
        with self._circuit_lock:
            by_states = self._transitions.setdefault(name, {})
            by_states[key] = by_states.get(key, 0) + 1
            state = self._owners.state_after(transition)
            if state is not None:
                self._states[name] = state.gauge_value

    def circuit_removed(self, circuit_name: str, circuit: Optional[StatefulCircuit] = None) -> None:
        """Stop reporting an evicted circuit's state and transitions. Safe if never added.

        A ``circuit`` that no longer owns its name (a newer one was added) removes nothing.
        """
        with self._circuit_lock:
            if not self._owners.remove(circuit_name, circuit):
                return
            self._states.pop(circuit_name, None)
            self._transitions.pop(circuit_name, None)

    # -- bounds -------------------------------------------------------------------------

    @property
    def max_buckets(self) -> int:
        """Distinct ``bucket`` attribute values (besides ``""`` and ``__other__``)."""
        return self.buckets.limit

    def allow_buckets(self, max_buckets: int) -> None:
        """Raise the bound on ``bucket`` values to ``max_buckets`` if it is lower."""
        self.buckets.raise_limit(max_buckets)

    # -- observed by the reader -----------------------------------------------------------

    def _observe_operations(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._calls_lock:
            counts = list(self._by_labels.values())
        return [Observation(count.value, count.attributes) for count in counts]

    def _observe_states(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._circuit_lock:
            states = list(self._states.items())
        return [Observation(value, {"circuit_name": name}) for name, value in states]

    def _observe_transitions(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._circuit_lock:
            counts = [
                (name, from_state, to_state, count)
                for name, by_states in self._transitions.items()
                for (from_state, to_state), count in by_states.items()
            ]
        return [
            Observation(
                count,
                {"circuit_name": name, "from_state": from_state, "to_state": to_state},
            )
            for name, from_state, to_state, count in counts
        ]


# provider -> namespace -> OtelMetrics. Weak keys: a provider a test throws away takes its
# sink with it. One sink per (provider, namespace): a second sink would register the
# observable callbacks twice and report every circuit twice.
_cache: weakref.WeakKeyDictionary[Any, dict[str, OtelMetrics]] = weakref.WeakKeyDictionary()
_cache_lock = _fork.new_lock()


def otel_metrics_for(
    meter_provider: Optional[MeterProvider],
    namespace: str,
    *,
    max_buckets: int = DEFAULT_MAX_BUCKETS,
) -> OtelMetrics:
    """The :class:`OtelMetrics` of ``meter_provider`` (``None``: the global ``MeterProvider``,
    which may be set after this call) under ``namespace``, created on first use, then shared.

    ``max_buckets`` bounds the distinct ``bucket`` values as for the Prometheus sink; a
    sink shared by installations takes the largest bound any of them asked for.

    Raises:
        ValueError: ``namespace`` cannot prefix an OpenTelemetry instrument name.
    """
    if not is_valid_otel_namespace(namespace):
        raise ValueError(
            f"metrics namespace {namespace!r} cannot prefix OpenTelemetry instrument names "
            "(it must start with a letter and hold only letters, digits, '_', '.', '-', '/')"
        )
    provider = otel.get_meter_provider() if meter_provider is None else meter_provider
    with _cache_lock:
        by_namespace = _cache.get(provider)
        if by_namespace is None:
            by_namespace = _cache[provider] = {}
        sink = by_namespace.get(namespace)
        if sink is None:
            meter = provider.get_meter(METER_NAME, __version__)
            sink = by_namespace[namespace] = OtelMetrics(meter, namespace, max_buckets=max_buckets)
        else:
            sink.allow_buckets(max_buckets)
        return sink


class OtelStoreMetrics:
    """The state store's two families on one ``Meter``, for installations with
    ``metrics="otel"`` and a ``state_url``; get it from :func:`otel_store_metrics_for`.

    The same facts as the Prometheus ``N_state_store_up`` / ``N_state_store_errors_total``
    (``botocore_resilience.store.metrics``), under OpenTelemetry's names: exported through
    the Collector they come out under the Prometheus names.
    """

    def __init__(self, meter: Meter, namespace: str) -> None:
        self._lock = _fork.new_lock()
        self._up: dict[str, int] = {}
        meter.create_observable_gauge(
            _name(namespace, "state_store.up"),
            callbacks=[self._observe_up],
            # Not "1": exported to Prometheus, a gauge of unit 1 gains a _ratio suffix.
            unit="{status}",
            description="1 while the state store is in use, 0 while this process judges "
            "circuits alone.",
        )
        self._errors = meter.create_counter(
            _name(namespace, "state_store.errors"),
            unit="{error}",
            description="State store operations that failed, by kind "
            "(timeout, connection, response, other).",
        )
        self._error_attributes = {kind: {"error": kind} for kind in ERROR_KINDS}

    def store_up(self, backend: str, up: bool) -> None:
        with self._lock:
            self._up[backend] = 1 if up else 0
        for attributes in self._error_attributes.values():  # every series from the start, at 0
            self._errors.add(0, attributes)

    def store_error(self, kind: str) -> None:
        self._errors.add(1, self._error_attributes.get(kind, self._error_attributes["other"]))

    def _observe_up(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            up = list(self._up.items())
        return [Observation(value, {"backend": backend}) for backend, value in up]


_store_cache: weakref.WeakKeyDictionary[Any, dict[str, OtelStoreMetrics]] = (
    weakref.WeakKeyDictionary()
)


def otel_store_metrics_for(
    meter_provider: Optional[MeterProvider], namespace: str
) -> OtelStoreMetrics:
    """The :class:`OtelStoreMetrics` of ``meter_provider`` (``None``: the global one) under
    ``namespace``, created on first use, then shared (as :func:`otel_metrics_for`)."""
    if not is_valid_otel_namespace(namespace):
        raise ValueError(f"metrics namespace {namespace!r} cannot prefix OpenTelemetry names")
    provider = otel.get_meter_provider() if meter_provider is None else meter_provider
    with _cache_lock:
        by_namespace = _store_cache.setdefault(provider, {})
        sink = by_namespace.get(namespace)
        if sink is None:
            meter = provider.get_meter(METER_NAME, __version__)
            sink = by_namespace[namespace] = OtelStoreMetrics(meter, namespace)
        return sink
