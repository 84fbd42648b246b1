"""What the plugin costs per call: side by side with bare botocore, in one process.

    python bench/overhead.py            # everything, ~3 minutes on 2 cores
    python bench/overhead.py --quick    # fewer rounds, for a smoke run
    python bench/overhead.py --only percall,rejection

Sections:

percall
    An S3 ``HeadObject`` whose transport is stubbed at ``before-send`` (a 200 with the
    usual headers, nothing sent), so only botocore's pipeline and the handlers are
    timed. Variants, each with its own session and the same client ``Config``: bare
    botocore; the plugin (breaker on, metrics on, a fresh ``CollectorRegistry``); the
    plugin with ``metrics=off``; and opentelemetry-instrumentation-botocore with an SDK
    ``TracerProvider`` when it is installed (it patches botocore process-wide, so it is
    instrumented just for its own turn). Rounds interleave the variants in a rotating
    order (ABCD, BCDA, ...); each round times a batch of calls per variant. The main
    figure is this thread's CPU time (``time.thread_time``), which other processes on
    a busy machine cannot inflate; wall time is reported next to it. Ratios are taken
    per round (paired) and summarised by their median.
rejection
    The cost of a call rejected by an open circuit (``CircuitBreakerOpen``), against a
    successful stubbed call with the plugin, interleaved the same way.
threaded
    8 threads sharing one client against :class:`LocalS3` (real HTTP on 127.0.0.1) with
    50 ms of latency per request: calls per second, bare vs plugin, and for contrast a
    strawman breaker that holds one lock across the whole call (as pybreaker does).

Benchmarks report; they never assert.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable, Optional

import boto3
from _common import CREDENTIALS, REGION, machine, stubbed_client, summary
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience import CircuitBreakerOpen
from botocore_resilience.breaker import Outcome

print = functools.partial(print, flush=True)  # progress shows as it comes


def _session() -> Any:
    return boto3.Session(region_name=REGION, **CREDENTIALS)


def _plugin_client(**options: Any) -> tuple[Any, Any]:
    session = _session()
    installation = botocore_resilience.install(
        session, registry=CollectorRegistry(), environ={}, **options
    )
    return installation, stubbed_client(session)


def _head(client: Any) -> Callable[[], Any]:
    def call() -> Any:
        return client.head_object(Bucket="bench", Key="object")

    return call


class _Variant:
    """One thing to time: a call, and optionally a context it must run inside."""

    def __init__(
        self, name: str, call: Callable[[], Any], around: Optional[Callable[[], Any]] = None
    ) -> None:
        self.name = name
        self.call = call
        self.around = around
        self.cpu: list[float] = []
        self.wall: list[float] = []

    def measure(self, calls: int) -> None:
        with self.around() if self.around is not None else _nothing():
            self.call()  # warm: first call after (un)instrumenting builds caches
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            for _ in range(calls):
                self.call()
            cpu1, wall1 = time.thread_time(), time.perf_counter()
        self.cpu.append((cpu1 - cpu0) / calls)
        self.wall.append((wall1 - wall0) / calls)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _otel_variant() -> Optional[_Variant]:
    try:
        from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        print("  (opentelemetry-instrumentation-botocore not installed: its variant skipped)")
        return None
    provider = TracerProvider()
    instrumentor = BotocoreInstrumentor()
    client = stubbed_client(_session())

    @contextmanager
    def instrumented() -> Iterator[None]:
        instrumentor.instrument(tracer_provider=provider)
        try:
            yield
        finally:
            instrumentor.uninstrument()

    return _Variant("otel-botocore (SDK tracer)", _head(client), instrumented)


def _interleave(variants: list[_Variant], rounds: int, calls: int) -> None:
    for variant in variants:  # warm-up round, not recorded
        variant.measure(max(10, calls // 10))
        variant.cpu.clear()
        variant.wall.clear()
    for round_ in range(rounds):
        shift = round_ % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.measure(calls)


def switched(rounds: int, calls: int) -> None:
    """One client, the plugin switched on and off between batches: no second client whose
    memory layout or connection state could differ, so the cleanest paired comparison.
    Switched off, the handlers still run but return at their first line."""
    print(f"\n## Same client, plugin on vs off, {rounds} rounds x {calls} calls")
    installation, client = _plugin_client()
    (binding,) = installation._bindings
    call = _head(client)

    @contextmanager
    def off() -> Iterator[None]:
        binding.handlers.runtime = None
        try:
            yield
        finally:
            binding.handlers.runtime = installation.runtime

    plugin_off = _Variant("plugin switched off", call, off)
    plugin_on = _Variant("plugin on (breaker on, metrics on)", call)
    _interleave([plugin_off, plugin_on], rounds, calls)
    ratios, added = _paired(plugin_off.cpu, plugin_on.cpu)
    best = min(plugin_on.cpu) / min(plugin_off.cpu)
    print(f"  {'switched off, cpu µs':36} {summary([v * 1e6 for v in plugin_off.cpu])}")
    print(f"  {'on, cpu µs':36} {summary([v * 1e6 for v in plugin_on.cpu])}")
    print(f"  {'on / off (paired per round)':36} ratio {summary(ratios)}")
    print(f"  {'':36} added µs {summary(added)}")
    print(f"  {'':36} best-of-rounds ratio {best:.4g}")


def _paired(a: list[float], b: list[float]) -> tuple[list[float], list[float]]:
    """Per-round ratios b/a and differences b-a (in microseconds)."""
    return [y / x for x, y in zip(a, b)], [(y - x) * 1e6 for x, y in zip(a, b)]


def percall(rounds: int, calls: int) -> None:
    print(f"\n## Per call: stubbed S3 HeadObject, {rounds} rounds x {calls} calls per variant")
    bare = _Variant("bare botocore", _head(stubbed_client(_session())))
    # A/A control: a second bare client. What it "adds" is the noise floor of the method.
    control = _Variant("bare botocore, another client (A/A)", _head(stubbed_client(_session())))
    _installation, plugin_client = _plugin_client()
    plugin = _Variant("plugin (breaker on, metrics on)", _head(plugin_client))
    _installation_off, quiet_client = _plugin_client(metrics=False)
    quiet = _Variant("plugin (breaker on, metrics off)", _head(quiet_client))
    variants = [bare, control, plugin, quiet]
    otel = _otel_variant()
    if otel is not None:
        variants.append(otel)
    _interleave(variants, rounds, calls)
    for clock in ("cpu", "wall"):
        print(f"\n{clock} time per call (µs):")
        for variant in variants:
            values = [v * 1e6 for v in getattr(variant, clock)]
            print(f"  {variant.name:36} {summary(values)}")
        print(f"{clock} ratio to bare botocore (paired per round) and µs added:")
        for variant in variants[1:]:
            ratios, added = _paired(getattr(bare, clock), getattr(variant, clock))
            best = min(getattr(variant, clock)) / min(getattr(bare, clock))
            print(f"  {variant.name:36} ratio {summary(ratios)}")
            print(f"  {'':36} added {summary(added)}")
            print(f"  {'':36} best-of-rounds ratio {best:.4g}")


_HOT_PATH = (
    ("before-parameter-build", "on_before_parameter_build"),
    ("before-call", "on_before_call"),
    ("request-created", "on_request_created"),
    ("needs-retry", "on_needs_retry"),
    ("after-call", "on_after_call"),
)


def record_hot_path(**options: Any) -> list[tuple[Callable[..., Any], dict[str, Any]]]:
    """The plugin's handlers and the exact arguments botocore gave them in one stubbed call."""
    from botocore_resilience.install import _installation_of

    installation, client = _plugin_client(**options)
    handlers = installation._bindings[0].handlers
    assert _installation_of(client) is None  # installed on the session, copied into the client
    recorded: list[tuple[Callable[..., Any], dict[str, Any]]] = []
    originals = {method: getattr(handlers, method) for _event, method in _HOT_PATH}

    def recorder(method: str) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            assert not args
            recorded.append((originals[method], kwargs))
            return originals[method](**kwargs)

        return record

    for event, method in _HOT_PATH:
        client.meta.events.register(event, recorder(method), unique_id=f"bench.{event}")
        client.meta.events.unregister(event, unique_id=f"botocore_resilience.{event}")
    client.head_object(Bucket="bench", Key="object")
    assert [fn.__name__ for fn, _ in recorded] == [m for _e, m in _HOT_PATH], recorded
    return recorded


def handlers(rounds: int, calls: int) -> None:
    """Only the plugin's own handlers, replayed with the arguments of a real call."""
    print(f"\n## The plugin's handlers alone (replayed), {rounds} rounds x {calls} calls")
    for label, options in (("metrics on", {}), ("metrics off", {"metrics": False})):
        recorded = record_hot_path(**options)

        def one_call(recorded: Any = recorded) -> None:
            for handler, kwargs in recorded:
                handler(**kwargs)

        variant = _Variant(f"handlers, {label}", one_call)
        _interleave([variant], rounds, calls)
        print(f"  {variant.name:36} cpu µs {summary([v * 1e6 for v in variant.cpu])}")


def rejection(rounds: int, calls: int) -> None:
    print(f"\n## Rejection while open, {rounds} rounds x {calls} calls")
    _installation, ok_client = _plugin_client()
    installation, open_client = _plugin_client(recovery_timeout=10**9, name="open")
    open_client.head_object(Bucket="bench", Key="object")  # creates the circuit
    (breaker,) = installation.breakers().values()
    while breaker.acquire() is not None:
        breaker.record(breaker.acquire(), Outcome.FAILURE, "forced open")

    def rejected() -> None:
        try:
            open_client.head_object(Bucket="bench", Key="object")
        except CircuitBreakerOpen:
            return
        raise AssertionError("the circuit was meant to be open")

    success = _Variant("successful call (plugin)", _head(ok_client))
    reject = _Variant("rejected call (CircuitBreakerOpen)", rejected)
    _interleave([success, reject], rounds, calls)
    for clock in ("cpu", "wall"):
        print(f"\n{clock} time per call (µs):")
        for variant in (success, reject):
            print(f"  {variant.name:36} {summary([v * 1e6 for v in getattr(variant, clock)])}")
        ratios, _added = _paired(getattr(success, clock), getattr(reject, clock))
        print(f"  {'rejected / successful':36} ratio {summary(ratios)}")


class _LockAcrossTheCall:
    """The strawman: one lock held from before-call to after-call, as pybreaker holds its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def install(self, session: Any) -> None:
        events = session._session
        events.register("before-call", self.acquire)
        events.register("after-call", self.release)
        events.register("after-call-error", self.release)

    def acquire(self, **kwargs: Any) -> None:
        self._lock.acquire()

    def release(self, **kwargs: Any) -> None:
        self._lock.release()


def threaded(rounds: int, calls_per_thread: int, threads: int = 8, latency: float = 0.05) -> None:
    from botocore.config import Config

    from botocore_resilience.testing import LocalS3

    print(
        f"\n## Threaded: {threads} threads share one client, LocalS3 with {latency * 1000:.0f} ms"
        f" latency, {calls_per_thread} HeadObject calls per thread, {rounds} rounds"
    )
    config = Config(
        retries={"mode": "adaptive", "total_max_attempts": 4}, max_pool_connections=threads * 2
    )
    with LocalS3() as s3:
        bucket = s3.create_bucket()
        s3.client().put_object(Bucket=bucket, Key="object", Body=b"hello")
        s3.latency = latency

        bare = s3.client(config=config)
        session = s3.session()
        botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
        plugin = s3.client(session=session, config=config)
        strawman_session = s3.session()
        _LockAcrossTheCall().install(strawman_session)
        strawman = s3.client(session=strawman_session, config=config)

        def throughput(client: Any, per_thread: int) -> float:
            start = threading.Barrier(threads + 1)

            def work() -> None:
                start.wait()
                for _ in range(per_thread):
                    client.head_object(Bucket=bucket, Key="object")

            pool = [threading.Thread(target=work) for _ in range(threads)]
            for thread in pool:
                thread.start()
            start.wait()
            began = time.perf_counter()
            for thread in pool:
                thread.join()
            return threads * per_thread / (time.perf_counter() - began)

        for client in (bare, plugin, strawman):  # warm the connection pools
            throughput(client, 1)
        results: dict[str, list[float]] = {"bare botocore": [], "plugin": []}
        for round_ in range(rounds):
            order = ["bare botocore", "plugin"] if round_ % 2 == 0 else ["plugin", "bare botocore"]
            for name in order:
                client = bare if name == "bare botocore" else plugin
                results[name].append(throughput(client, calls_per_thread))
        straw = [throughput(strawman, max(2, calls_per_thread // 4)) for _ in range(2)]

    ideal = threads / latency
    print(f"calls per second (ideal {ideal:.0f}: {threads} threads / {latency}s):")
    for name, values in results.items():
        print(f"  {name:36} {summary(values)}")
    print(f"  {'strawman: lock across the call':36} {summary(straw)}")
    ratios = [p / b for b, p in zip(results["bare botocore"], results["plugin"])]
    print(f"  {'plugin / bare (paired per round)':36} ratio {summary(ratios)}")
    straw_ratio = statistics.median(straw) / statistics.median(results["bare botocore"])
    print(f"  {'strawman / bare (medians)':36} ratio {straw_ratio:.3g}")


SECTIONS = ("handlers", "percall", "switched", "rejection", "threaded")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    print(machine())
    if "handlers" in sections:
        handlers(rounds=6 if args.quick else 30, calls=1000 if args.quick else 3000)
    if "percall" in sections:
        # Many short rounds: on a busy machine, a round's variants then see the same load.
        percall(rounds=20 if args.quick else 400, calls=20)
    if "switched" in sections:
        switched(rounds=20 if args.quick else 400, calls=20)
    if "rejection" in sections:
        rejection(rounds=20 if args.quick else 300, calls=20)
    if "threaded" in sections:
        threaded(rounds=2 if args.quick else 12, calls_per_thread=5 if args.quick else 15)


if __name__ == "__main__":
    main()
