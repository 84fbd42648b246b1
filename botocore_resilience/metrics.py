"""The Prometheus metrics: the only module that touches prometheus-client's metric types.

:func:`metrics_for` creates the six metric families (``docs/reference/metrics.md``) once
per ``(registry, namespace)`` and hands back a :class:`Metrics` whose methods the
handlers call with plain values. ``N`` below is the namespace (``botocore`` by
default; ``s3`` gives the names of the S3 design this library grew from)::

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> metrics = metrics_for(registry, "s3")
    >>> metrics.call_finished("s3", "GetObject", "photos", "success", 0.042)
    >>> registry.get_sample_value(
    ...     "s3_operations_total",
    ...     {"service": "s3", "operation": "GetObject", "bucket": "photos", "result": "success"})
    1.0
    >>> metrics_for(registry, "s3") is metrics
    True

Every label holds a value from a small, bounded set: never an object key, a
request id or an error message. Worst-case series counts, where ``S`` is the
services used, ``O`` the operations called per service, ``B`` the distinct
``bucket`` label values per operation (``""`` only, for non-S3 services; at most
``max_buckets + 2`` for S3: the first ``max_buckets`` bucket names seen, ``""`` and
``"__other__"``), ``A`` ``max_attempts - 1`` and ``C`` the circuits (one per
service/region, times operations or buckets under the ``operation``/``bucket``
scopes, at most ``max_circuits`` besides the service circuits):

========================================= ==============================================
family                                    series (worst case)
========================================= ==============================================
``N_operations_total``                    ``S x O x B x 3`` (result)
``N_operation_duration_seconds``          ``S x O x B`` histograms of 17 series each
                                          (14 buckets + ``+Inf``, ``_sum``, ``_count``)
``N_circuit_breaker_state``               ``C``
``N_circuit_breaker_transitions_total``   ``C x 6`` (closed->open, open->half_open,
                                          half_open->open, half_open->closed,
                                          open->closed by ``reset()``, open->open
                                          by ``force_open()``); ``C x 7`` with a
                                          state store (closed->half_open: a
                                          half-open circuit read from the store)
``N_retry_attempts_total``                ``S x O x A``
``N_retry_quota_exhausted_total``         ``S x O``
========================================= ==============================================

Single-process registries also export a ``_created`` sample per counter and
histogram series (prometheus-client's default); multiprocess mode does not.

``B`` is the factor the application's data controls: a program that spreads its
calls over many buckets (one per tenant, say) multiplies the two per-call
families by that number, up to the bound; every call past it is still counted,
under ``bucket="__other__"`` (see ``docs/reference/metrics.md``).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Mapping
from typing import Final, Optional, Protocol

import prometheus_client.values
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from . import _fork
from ._owners import CircuitOwners, StatefulCircuit
from .breaker import CircuitState, Transition
from .call_metrics import DURATION_BUCKETS, OTHER_BUCKET, CallMetrics, call_metrics_for
from .circuits import is_registered
from .config import Settings, is_valid_namespace  # one namespace rule, for settings and metrics
from .logs import logger  # never raises

__all__ = [
    "DEFAULT_MAX_BUCKETS",
    "DURATION_BUCKETS",
    "GAUGE_MULTIPROCESS_MODE",
    "NULL_METRICS",
    "OTHER_BUCKET",
    "Metrics",
    "MetricsRegistrationError",
    "MetricsSink",
    "NullMetrics",
    "StatefulCircuit",
    "is_valid_namespace",
    "metrics_for",
]

GAUGE_MULTIPROCESS_MODE: Final = "livemax"
"""How the state gauge aggregates over worker processes (``PROMETHEUS_MULTIPROC_DIR``).

Each worker process has its own breakers, so with one worker's ``s3/us-east-1``
open and another's closed there are two truths. The gauge's values are ordered
by severity (0 closed < 1 half-open < 2 open), so ``max`` shows the worst one:
the operator sees *open* while any worker rejects calls, which is what an alert
on ``N_circuit_breaker_state == 2`` should fire on, without a ``pid`` label that
multiplies series by workers and grows with every restart (``all``).
``mostrecent`` would flap between workers' answers (and is newer than
prometheus-client 0.16, the oldest we support; ``livemax`` is in 0.15+).
``sum`` is meaningless for a state.
The ``live`` variant drops a dead worker's value when the server calls
``prometheus_client.multiprocess.mark_process_dead(pid)`` (gunicorn's
``child_exit`` hook), so a worker that died with its circuit open does not pin
the gauge at 2; without that hook it behaves exactly like ``max``.
"""


DEFAULT_MAX_BUCKETS: Final = Settings.max_circuits
"""The bound on distinct ``bucket`` label values when none is given: the default of the
``max_circuits`` setting, which install() passes."""


class MetricsRegistrationError(ValueError):
    """The registry already holds a collector, not ours, under one of our metric names."""


class MetricsSink(Protocol):
    """What the handlers and circuits call: the seam every metrics backend implements.

    Satisfied by :class:`Metrics` (prometheus-client) and :class:`NullMetrics`. A backend
    must count each call once, never raise into the caller's call (the callers guard it
    anyway), and take its labels only from the arguments given here.

    ``circuit_added`` is given the new circuit itself when the caller has it: the state
    gauge then shows the state of the newest circuit of that name (the one that judges
    new calls), read from it, whatever older circuits of the same name report.
    """

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None: ...

    def retry_made(self, service: str, operation: str, attempt: int) -> None: ...

    def quota_exhausted(self, service: str, operation: str) -> None: ...

    def circuit_added(
        self, circuit_name: str, state: CircuitState, circuit: Optional[StatefulCircuit] = None
    ) -> None: ...

    def transition(self, transition: Transition) -> None: ...

    def circuit_removed(
        self, circuit_name: str, circuit: Optional[StatefulCircuit] = None
    ) -> None: ...


class Metrics:
    """The six metric families of one ``(registry, namespace)``; get it from :func:`metrics_for`.

    The two families written on every call, ``N_operations_total`` and
    ``N_operation_duration_seconds``, are kept by a collector of ours in a single
    process: one dict lookup and one short-held lock per call, the per-series
    numbers summed into buckets only when scraped. With ``PROMETHEUS_MULTIPROC_DIR``
    set they are prometheus-client's ``Counter`` and ``Histogram``, whose values
    live in the files that aggregate across worker processes. Either way the
    scrape is the same.

    :meth:`retry_made` and :meth:`quota_exhausted` (only on retries) keep a dict from
    label values to the prometheus-client child, so they cost one tuple and one dict
    lookup before its own locked increment; see :class:`_ClientCallMetrics` for why
    the caches need no lock.

    Circuit methods are rare and take ``self._circuit_lock``, which makes "which state
    does the gauge show now?" and the gauge update one step.

    The state gauge shows the state of the *owner* of a name: the circuit most recently
    added under it. A re-``install()`` with new options makes new circuits under the old
    names while calls admitted by the old ones are still running; those may still
    change the old circuits' state (and are counted in the transitions family), but
    the gauge shows the new circuit, read from it at every change. Without the circuit
    object (``circuit=None``), the newest transition by ``seq`` wins, as one breaker's
    notifications may arrive out of order.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        namespace: str,
        *,
        environ: Optional[Mapping[str, str]] = None,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
    ) -> None:
        # The registry is used here and never stored: metrics_for's cache is keyed
        # weakly by it, and a reference from this value would keep the key alive.
        # environ (default os.environ) is only asked whether prometheus-client's
        # multiprocess mode is on; see circuit_removed.
        self._multiprocess = (
            multiprocess_dir(os.environ if environ is None else environ) is not None
        )
        registered: list[Collector] = []
        try:
            self._calls: CallMetrics = call_metrics_for(
                namespace, multiprocess=self._multiprocess, max_buckets=max_buckets
            )
            self._state = Gauge(
                "circuit_breaker_state",
                "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                ("circuit_name",),
                namespace=namespace,
                registry=None,
                multiprocess_mode=GAUGE_MULTIPROCESS_MODE,
            )
            self._transitions = Counter(
                "circuit_breaker_transitions_total",
                "Circuit breaker state changes (closed, open, half_open).",
                ("circuit_name", "from_state", "to_state"),
                namespace=namespace,
                registry=None,
            )
            self._retries = Counter(
                "retry_attempts_total",
                'Retries actually made; attempt is "1" for the first retry of a call.',
                ("service", "operation", "attempt"),
                namespace=namespace,
                registry=None,
            )
            self._quota_exhausted = Counter(
                "retry_quota_exhausted_total",
                "Calls on which botocore's retry quota ran out.",
                ("service", "operation"),
                namespace=namespace,
                registry=None,
            )
            for collector in (
                *self._calls.collectors,
                self._state,
                self._transitions,
                self._retries,
                self._quota_exhausted,
            ):
                registry.register(collector)
                registered.append(collector)
        except BaseException as exc:
            # All or nothing, whatever failed (a name clash, or a registry of the user's
            # that raised once): leave the registry as we found it, so a later attempt
            # (or another namespace) is not blocked by half of our families.
            for collector in reversed(registered):
                # It failed to register once; it may fail to unregister too.
                with contextlib.suppress(Exception):
                    registry.unregister(collector)
            if not isinstance(exc, ValueError):
                raise
            raise MetricsRegistrationError(
                f"cannot register the botocore-resilience metrics with namespace {namespace!r}: "
                f"{exc}. Another collector in this registry already uses one of these names; "
                "choose another metrics_namespace or registry."
            ) from exc

        self._retry_children: dict[tuple[str, str, int], Counter] = {}
        self._quota_children: dict[tuple[str, str], Counter] = {}

        self._circuit_lock = _fork.new_lock()
        self._owners = CircuitOwners()  # guarded by _circuit_lock, as what follows
        self._shared_names: set[str] = set()  # warned about: see circuit_added
        self._unwarned: list[str] = []  # of those, not logged yet
        self._gauges: dict[str, Gauge] = {}
        self._transition_children: dict[str, dict[tuple[str, str], Counter]] = {}
        _fork.at_fork_in_child(self._after_fork_in_child)

    # -- per call (hot path) ------------------------------------------------------------

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None:
        """Count one logical call; observe its duration unless it was never sent (``None``)."""
        self._calls.call_finished(service, operation, bucket, result, duration)
        if self._unwarned:  # rare: see circuit_added
            self._warn_shared_names()

    def retry_made(self, service: str, operation: str, attempt: int) -> None:
        """Count one retry actually made; ``attempt`` is 1 for a call's first retry."""
        key = (service, operation, attempt)
        child = self._retry_children.get(key)
        if child is None:
            if attempt < 1:
                raise ValueError(f"attempt counts retries from 1, not {attempt!r}")
            child = self._retry_children.setdefault(
                key, self._retries.labels(service, operation, str(attempt))
            )
        child.inc()

    def quota_exhausted(self, service: str, operation: str) -> None:
        """Count one call on which botocore's retry quota ran out."""
        key = (service, operation)
        child = self._quota_children.get(key)
        if child is None:
            child = self._quota_children.setdefault(
                key, self._quota_exhausted.labels(service, operation)
            )
        child.inc()

    # -- per circuit (rare) -------------------------------------------------------------

    def circuit_added(
        self, circuit_name: str, state: CircuitState, circuit: Optional[StatefulCircuit] = None
    ) -> None:
        """Export a new circuit's state. With ``circuit``, it owns the gauge from now on;
        without it, its transitions will count their ``seq`` from 1."""
        with self._circuit_lock:
            if circuit is not None:
                previous = self._owners.owner(circuit_name)
                if previous is not None and previous is not circuit and is_registered(previous):
                    self._warn_shared_name(circuit_name)
            state = self._owners.add(circuit_name, state, circuit)
            self._gauge(circuit_name).set(state.gauge_value)

    def transition(self, transition: Transition) -> None:
        """Count a state change, and bring the gauge up to date.

        The breaker notifies outside its lock, so two threads may deliver its
        transitions in either order. With an owner, the gauge is set to the owner's
        state as it is now, which after the last delivery is its latest state; without
        one, ``seq`` says which transition is newer.
        """
        name = transition.circuit_name
        with self._circuit_lock:
            by_states = self._transition_children.setdefault(name, {})
            key = (transition.from_state.value, transition.to_state.value)
            child = by_states.get(key)
            if child is None:
                child = by_states[key] = self._transitions.labels(name, *key)
            child.inc()
            state = self._owners.state_after(transition)
            if state is not None:
                self._gauge(name).set(state.gauge_value)

    def circuit_removed(self, circuit_name: str, circuit: Optional[StatefulCircuit] = None) -> None:
        """Drop an evicted circuit's state and transition series. Safe if never added.

        A ``circuit`` that no longer owns its name (a newer circuit of the same name was
        added since) removes nothing: the series are the newer one's.

        With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus-client cannot remove a
        series (the values live in per-process files and removal only warns), so
        the gauge is set to closed, which an evicted circuit is, and both series
        stay until the worker exits.
        """
        with self._circuit_lock:
            if not self._owners.remove(circuit_name, circuit):
                return
            gauge = self._gauges.pop(circuit_name, None)
            by_states = self._transition_children.pop(circuit_name, {})
            if self._multiprocess:
                if gauge is not None:
                    gauge.set(CircuitState.CLOSED.gauge_value)
                return
            if gauge is not None:
                self._state.remove(circuit_name)
            for from_state, to_state in by_states:
                self._transitions.remove(circuit_name, from_state, to_state)

    def _warn_shared_name(self, circuit_name: str) -> None:
        # Called with self._circuit_lock held (and the circuits' lock: circuits are added
        # under it), so only noted here. The warning is logged by the call that made the
        # circuit, when it finishes, outside every lock: a log handler may itself make an
        # AWS call through the plugin, and would deadlock on a lock held here.
        if circuit_name not in self._shared_names:
            self._shared_names.add(circuit_name)
            self._unwarned.append(circuit_name)

    def _warn_shared_names(self) -> None:
        with self._circuit_lock:
            names, self._unwarned = self._unwarned, []
        for circuit_name in names:
            logger.warning(
                "two installations with different settings make circuit %s and report it "
                "to the same metrics registry; its state gauge shows the newer one only. "
                "Give each installation its own name (the name option, or "
                "BOTOCORE_RESILIENCE_NAME) to tell their circuits apart.",
                circuit_name,
            )

    # -- bounds and processes -----------------------------------------------------------

    @property
    def max_buckets(self) -> int:
        """Distinct ``bucket`` label values (besides ``""`` and :data:`OTHER_BUCKET`)."""
        return self._calls.buckets.limit

    def allow_buckets(self, max_buckets: int) -> None:
        """Raise the bound on ``bucket`` label values to ``max_buckets`` if it is lower.

        Installations sharing this object may ask for different bounds; the largest
        wins (series already exported can never be taken back).
        """
        self._calls.buckets.raise_limit(max_buckets)

    def _after_fork_in_child(self) -> None:
        # Our own locks are fork-safe already (_fork.new_lock); these belong to the
        # prometheus-client objects we own, held for a moment on every update: every
        # family held in an attribute, whoever added it.
        families = [*self._calls.collectors, *vars(self).values()]
        for metric in families:
            if isinstance(metric, MetricWrapperBase):
                _reinit_prometheus_locks(metric)
        if self._multiprocess:
            _reinit_multiprocess_value_lock()

    def _gauge(self, circuit_name: str) -> Gauge:
        # Called with self._circuit_lock held.
        gauge = self._gauges.get(circuit_name)
        if gauge is None:
            gauge = self._gauges[circuit_name] = self._state.labels(circuit_name)
        return gauge


def _reinit_multiprocess_value_lock() -> None:
    """Release the one lock prometheus-client's multiprocess values share, if we can find it.

    It is a local variable of ``prometheus_client.values.MultiProcessValue``, captured by
    the value class's methods; not ours, but a thread of the parent holding it at fork
    would hang the child's first update. Nothing happens if a version keeps it elsewhere.
    """
    value_class = getattr(prometheus_client.values, "ValueClass", None)
    for cell in getattr(getattr(value_class, "inc", None), "__closure__", None) or ():
        with contextlib.suppress(ValueError):  # an empty cell
            _fork.reinit_lock(cell.cell_contents)


def _reinit_prometheus_locks(metric: object) -> None:
    """Release the locks of a prometheus-client metric and of its children's values."""
    _fork.reinit_lock(getattr(metric, "_lock", None))
    children = getattr(metric, "_metrics", None)
    if not isinstance(children, dict):
        return
    for child in list(children.values()):
        _fork.reinit_lock(getattr(child, "_lock", None))
        for value in list(vars(child).values()):
            for one in value if isinstance(value, list) else (value,):
                _fork.reinit_lock(getattr(one, "_lock", None))


class NullMetrics:
    """Used with ``metrics=off``: every method of :class:`Metrics`, doing nothing."""

    def call_finished(
        self, service: str, operation: str, bucket: str, result: str, duration: Optional[float]
    ) -> None:
        pass

    def retry_made(self, service: str, operation: str, attempt: int) -> None:
        pass

    def quota_exhausted(self, service: str, operation: str) -> None:
        pass

    def circuit_added(
        self, circuit_name: str, state: CircuitState, circuit: Optional[StatefulCircuit] = None
    ) -> None:
        pass

    def transition(self, transition: Transition) -> None:
        pass

    def circuit_removed(self, circuit_name: str, circuit: Optional[StatefulCircuit] = None) -> None:
        pass


NULL_METRICS = NullMetrics()

# registry -> namespace -> Metrics. Weak keys: a registry a test throws away takes
# its Metrics with it. Guarded by _cache_lock so two installs racing on one
# registry cannot both register the families (prometheus-client would refuse the
# second with "Duplicated timeseries").
_cache: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Metrics]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = _fork.new_lock()


def metrics_for(
    registry: Optional[CollectorRegistry],
    namespace: str,
    *,
    max_buckets: int = DEFAULT_MAX_BUCKETS,
) -> Metrics:
    """The metrics factory: the :class:`Metrics` of ``registry`` (``None``:
    prometheus-client's default ``REGISTRY``) under ``namespace``, created on first use
    and shared afterwards.

    Installing twice on one registry, or two sessions sharing it, gets the same
    object, so nothing is registered or counted twice. ``max_buckets`` (install()
    passes the ``max_circuits`` setting) bounds the distinct ``bucket`` label values;
    calls to further buckets are counted under ``bucket="__other__"``. Installations
    sharing one object get the largest bound any of them asked for.

    Registering is all or nothing: if the registry refuses any family, or raises,
    none of ours stays registered and nothing is cached, so a later call tries again.

    Raises:
        ValueError: ``namespace`` cannot prefix a metric name (see
            :func:`is_valid_namespace`), or ``max_buckets`` < 1.
        MetricsRegistrationError: (a ``ValueError``) a collector that is not ours
            already uses one of the six names in ``registry``; nothing of ours is
            left registered.
        Exception: whatever the registry raised; nothing of ours is left registered.
    """
    if not is_valid_namespace(namespace):
        raise ValueError(
            f"metrics namespace {namespace!r} is not a valid metric name prefix "
            "(it must match [a-zA-Z_:][a-zA-Z0-9_:]*)"
        )
    if registry is None:
        registry = REGISTRY
    with _cache_lock:
        by_namespace = _cache.get(registry)
        if by_namespace is None:
            by_namespace = _cache[registry] = {}
        metrics = by_namespace.get(namespace)
        if metrics is None:
            metrics = by_namespace[namespace] = Metrics(
                registry, namespace, max_buckets=max_buckets
            )
        else:
            metrics.allow_buckets(max_buckets)
        return metrics


def _reinit_registry_locks_in_child() -> None:
    # A thread of the parent may have been scraping (prometheus-client's registry holds
    # its lock while it copies its collectors); the child's first scrape would hang.
    for registry in list(_cache.keys()):
        _fork.reinit_lock(getattr(registry, "_lock", None))


if hasattr(os, "register_at_fork"):  # after _fork's own handler: registered on import
    os.register_at_fork(after_in_child=_reinit_registry_locks_in_child)


def multiprocess_dir(environ: Mapping[str, str]) -> Optional[str]:
    """The directory of prometheus-client's multiprocess mode, looked up as it does, or ``None``.

    Read when called, never at import. (prometheus-client itself picks its value
    storage when it is first imported.)
    """
    return environ.get("PROMETHEUS_MULTIPROC_DIR") or environ.get("prometheus_multiproc_dir")
