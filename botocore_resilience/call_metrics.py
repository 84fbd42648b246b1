"""The two families written on every call: operations_total and operation_duration_seconds.

:func:`call_metrics_for` builds them one of two ways (both satisfy :class:`CallMetrics`):

* in a single process, :class:`InProcessCallMetrics`, a collector of ours: one dict lookup
  and one short-held lock per call, the per-series numbers made cumulative only when
  scraped (prometheus-client's ``Counter``/``Histogram`` take three locks and walk the
  buckets in Python on every call, which was most of the plugin's per-call cost);
* with ``PROMETHEUS_MULTIPROC_DIR`` set, :class:`MultiprocessCallMetrics`, prometheus-client's
  own classes, whose values live in the per-process files its multiprocess collector adds up.

Both export the same samples (tested: the scrapes are identical but for ``_created``
timestamps), and both bound the ``bucket`` label with a :class:`BucketLabels`: at most
``max_buckets`` distinct bucket names, then :data:`OTHER_BUCKET`.

>>> calls = call_metrics_for("botocore", multiprocess=False, max_buckets=1)
>>> calls.call_finished("s3", "GetObject", "photos", "success", 0.01)
>>> calls.call_finished("s3", "GetObject", "videos", "success", 0.01)  # past the bound
>>> sorted(sample.labels["bucket"] for sample in calls.collect()[0].samples
...        if sample.name == "botocore_operations_total")
['__other__', 'photos']
"""

from __future__ import annotations

import time
from bisect import bisect_left
from itertools import accumulate
from typing import Optional, Protocol

import prometheus_client.metrics
from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from . import _fork
from .observers import RESULTS as _RESULTS

__all__ = [
    "DURATION_BUCKETS",
    "OTHER_BUCKET",
    "RESULTS",
    "BucketLabels",
    "CallMetrics",
    "InProcessCallMetrics",
    "MultiprocessCallMetrics",
    "call_metrics_for",
]

DURATION_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)
"""Upper bounds (seconds) of the duration histogram, ``+Inf`` implied.

Why these: a logical call includes retries and backoff. Below 5 ms there is
nothing to resolve (in-region DynamoDB/SQS round trips and botocore's own
signing sit there). 10 ms-1 s is where healthy S3/DynamoDB/STS calls live, so it
is the densest part. 1-10 s catches calls that needed retries: botocore's
backoff is random up to 1, 2, 4 s for the first three retries. 20 s is
botocore's backoff cap, and 60 s its default connect and read timeout, so a call
past 60 s has hit at least one timeout and only needs counting (``+Inf``).
Fourteen buckets keep each histogram at 17 series.
"""

RESULTS = frozenset(_RESULTS)
"""The values of the ``result`` label: the one vocabulary of :mod:`.observers`."""

OTHER_BUCKET = "__other__"
"""The ``bucket`` label of calls to buckets beyond the bound (no S3 bucket can be named so:
bucket names have no underscores)."""


class BucketLabels:
    """The ``bucket`` label of a call: its bucket, or :data:`OTHER_BUCKET` past the bound.

    The first ``limit`` distinct bucket names seen keep their own label for the life of
    the process (a counter's series must not vanish); every later one is counted under
    :data:`OTHER_BUCKET`. ``""`` (calls that name no bucket) is not a bucket and is
    always itself.

    >>> labels = BucketLabels(2)
    >>> [labels.label(b) for b in ("a", "b", "c", "a", "")]
    ['a', 'b', '__other__', 'a', '']
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the bucket label bound must be >= 1, not {limit!r}")
        self._limit = limit
        self._admitted: set[str] = set()
        self._lock = _fork.new_lock()  # makes "is there room?" and "take it" one step

    @property
    def limit(self) -> int:
        return self._limit

    def raise_limit(self, limit: int) -> None:
        """Allow up to ``limit`` buckets, if more than now (a bound never shrinks: the
        series already exported stay)."""
        with self._lock:
            self._limit = max(self._limit, limit)

    def label(self, bucket: str) -> str:
        """Called when a call's label set has no series yet, so not on every call."""
        admitted = self._admitted
        if bucket in admitted or bucket == "":
            return bucket
        if len(admitted) >= self._limit:  # full: no lock (the set only grows)
            return OTHER_BUCKET
        with self._lock:
            if bucket not in admitted:
                if len(admitted) >= self._limit:
                    return OTHER_BUCKET
                admitted.add(bucket)
        return bucket

    def __len__(self) -> int:
        return len(self._admitted)


# The two per-call families: one name, help text and label names for both implementations.
_OPERATIONS = "operations_total"
_OPERATIONS_HELP = "Logical AWS calls (retries included), by result: success, error, circuit_open."
_OPERATIONS_LABELS = ("service", "operation", "bucket", "result")
_DURATION = "operation_duration_seconds"
_DURATION_HELP = "Wall time of each logical AWS call that was sent, retries and backoff included."
_DURATION_LABELS = ("service", "operation", "bucket")

# The ``le`` label of each bucket, spelled as prometheus-client spells it ("0.005", "1.0",
# "+Inf"), and the index of the sum in _CallSeries.observed.
_LE = (*(floatToGoString(b) for b in DURATION_BUCKETS), "+Inf")  # type: ignore[no-untyped-call]
_SUM = len(_LE)


class _CallSeries:
    """One ``(service, operation, bucket)``: its calls by result and its duration histogram.

    ``lock`` guards ``counts`` and ``observed``; it is held for three float additions.
    """

    __slots__ = ("counts", "created", "lock", "observed")

    def __init__(self) -> None:
        self.lock = _fork.new_lock()
        self.counts: dict[str, float] = {}  # result -> calls; a key appears on its first call
        # Observations per bucket (not cumulative; +Inf last), then their sum.
        self.observed = [0.0] * (_SUM + 1)
        self.created = time.time()


class InProcessCallMetrics:
    """``N_operations_total`` and ``N_operation_duration_seconds`` for a single process.

    A custom collector that exports exactly what prometheus-client's ``Counter`` and
    ``Histogram`` would for the same calls (the same samples, labels, series order and
    ``_created``), but keeps the numbers itself: a call costs one dict lookup, a
    ``bisect`` and one lock held for three float additions, where the metric children
    took three locks and walked the buckets in Python. Buckets are made cumulative
    when scraped.

    A call to a bucket past the bound finds no series under its own name and takes
    the slow path (:meth:`_first_call`), which finds the :data:`OTHER_BUCKET` series
    without taking a lock once it exists.
    """

    def __init__(self, namespace: str, buckets: BucketLabels) -> None:
        self._operations = _full_name(namespace, _OPERATIONS)
        self._duration = _full_name(namespace, _DURATION)
        self.buckets = buckets
        self.collectors: tuple[Collector, ...] = (self,)
        # Guards which series and results exist (written only on a label set's first
        # call); each series' numbers are guarded by its own lock. Taken in that order.
        self._lock = _fork.new_lock()
        self._series: dict[tuple[str, str, str], _CallSeries] = {}
        # (service, operation, bucket, result) -> when first counted. In first-use order,
        # which is the order prometheus-client exports a counter's children in.
        self._results: dict[tuple[str, str, str, str], float] = {}

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None:
        series = self._series.get((service, operation, bucket))
        if series is None or result not in series.counts:
            series = self._first_call(service, operation, bucket, result)
        if duration is None:
            with series.lock:
                series.counts[result] += 1.0
            return
        # The first bound >= duration: Histogram.observe's "amount <= bound" (+Inf past the end).
        index = bisect_left(DURATION_BUCKETS, duration)
        observed = series.observed
        # A thread switch can happen inside "x += 1.0": without the lock, increments get lost.
        with series.lock:
            series.counts[result] += 1.0
            observed[index] += 1.0
            observed[_SUM] += duration

    def _first_call(self, service: str, operation: str, bucket: str, result: str) -> _CallSeries:
        if result not in RESULTS:
            raise ValueError(f"result must be one of {sorted(RESULTS)}, not {result!r}")
        bucket = self.buckets.label(bucket)
        key = (service, operation, bucket)
        series = self._series.get(key)
        if series is not None and result in series.counts:
            return series  # a bucket past the bound, counted under OTHER_BUCKET
        with self._lock:
            series = self._series.get(key)
            if series is None:
                # Exported from now on, observed or not, as Histogram.labels() would be.
                series = self._series[key] = _CallSeries()
            if result not in series.counts:
                self._results[(service, operation, bucket, result)] = time.time()
                with series.lock:
                    series.counts[result] = 0.0
        return series

    def describe(self) -> list[Metric]:
        """The two families, empty: the names the registry checks for clashes."""
        return list(self._families())

    def collect(self) -> list[Metric]:
        """The two families with every series, as ``Counter`` and ``Histogram`` export them."""
        operations, duration = self._families()
        created = _created_series_enabled()
        with self._lock:
            series = list(self._series.items())
            results = list(self._results.items())
        # Every result listed is in its series' counts: both were added under self._lock.
        counts: dict[tuple[str, str, str], dict[str, float]] = {}
        for key, one in series:
            with one.lock:
                counts[key] = dict(one.counts)
                observed = list(one.observed)
            buckets = list(zip(_LE, accumulate(observed[:_SUM])))
            duration.add_metric(key, buckets, observed[_SUM])
            if created:
                labels = dict(zip(_DURATION_LABELS, key))
                duration.add_sample(self._duration + "_created", labels, one.created)
        for (service, operation, bucket, result), since in results:
            operations.add_metric(
                (service, operation, bucket, result),
                counts[service, operation, bucket][result],
                created=since if created else None,
            )
        return [operations, duration]

    def _families(self) -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        return (
            CounterMetricFamily(self._operations, _OPERATIONS_HELP, labels=_OPERATIONS_LABELS),
            HistogramMetricFamily(self._duration, _DURATION_HELP, labels=_DURATION_LABELS),
        )


def _full_name(namespace: str, name: str) -> str:
    # How prometheus-client joins namespace and name ("" means no prefix).
    return f"{namespace}_{name}" if namespace else name


def _created_series_enabled() -> bool:
    # prometheus-client's own switch (PROMETHEUS_DISABLE_CREATED_SERIES, read when it is
    # imported; disable_created_metrics() in newer versions), read per scrape as its
    # metric classes do, so both kinds of family show _created or neither does.
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


class CallMetrics(Protocol):
    """The per-call families as :class:`~botocore_resilience.metrics.Metrics` uses them."""

    collectors: tuple[Collector, ...]
    """What to register."""

    buckets: BucketLabels
    """The bound on the ``bucket`` label."""

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None: ...


def call_metrics_for(namespace: str, *, multiprocess: bool, max_buckets: int) -> CallMetrics:
    """The per-call families under ``namespace``, kept in this process's memory or, with
    ``multiprocess``, in prometheus-client's multiprocess files; ``bucket`` label bounded by
    ``max_buckets`` distinct names. Nothing is registered: register ``.collectors``."""
    buckets = BucketLabels(max_buckets)
    if multiprocess:
        return MultiprocessCallMetrics(namespace, buckets)
    return InProcessCallMetrics(namespace, buckets)


class MultiprocessCallMetrics:
    """The per-call families as prometheus-client ``Counter`` and ``Histogram``: multiprocess mode.

    With ``PROMETHEUS_MULTIPROC_DIR`` set, their values live in per-process files that
    ``MultiProcessCollector`` adds up over the workers; numbers kept in this process's
    memory would never reach the scrape. The children are cached per label set, so a
    call costs one dict lookup before prometheus-client's locked updates.
    """

    def __init__(self, namespace: str, buckets: BucketLabels) -> None:
        self.buckets = buckets
        self._operations = Counter(
            _OPERATIONS, _OPERATIONS_HELP, _OPERATIONS_LABELS, namespace=namespace, registry=None
        )
        self._duration = Histogram(
            _DURATION,
            _DURATION_HELP,
            _DURATION_LABELS,
            namespace=namespace,
            registry=None,
            buckets=DURATION_BUCKETS,
        )
        self.collectors: tuple[Collector, ...] = (self._operations, self._duration)
        # (service, operation, bucket) -> (histogram child, {result: counter child}).
        # Filled with dict.get then dict.setdefault, each atomic under the GIL (and
        # internally locked on free-threaded builds); two threads racing on a new key
        # at worst both call .labels(), which returns the same child under the metric's
        # own lock, so no count is lost or doubled.
        self._children: dict[tuple[str, str, str], tuple[Histogram, dict[str, Counter]]] = {}

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None:
        key = (service, operation, bucket)
        children = self._children.get(key)
        if children is None:
            key = (service, operation, self.buckets.label(bucket))
            children = self._children.get(key)
            if children is None:
                children = self._children.setdefault(key, (self._duration.labels(*key), {}))
        histogram, counters = children
        counter = counters.get(result)
        if counter is None:
            if result not in RESULTS:
                raise ValueError(f"result must be one of {sorted(RESULTS)}, not {result!r}")
            counter = counters.setdefault(result, self._operations.labels(*key, result))
        counter.inc()
        if duration is not None:
            histogram.observe(duration)
