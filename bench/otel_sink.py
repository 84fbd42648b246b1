"""What the OpenTelemetry metrics sink costs per call, next to the Prometheus sink.

    python bench/otel_sink.py            # both sections, ~1 minute on 2 cores
    python bench/otel_sink.py --quick    # fewer rounds, for a smoke run

Needs ``opentelemetry-sdk`` (the ``test`` extra installs it).

Sections:

sink
    The per-call event alone, as the handlers send it at the end of every call:
    ``call_finished(service, operation, bucket, "success", duration)``, on the
    Prometheus sink (a fresh ``CollectorRegistry``) and on the OpenTelemetry sink (an SDK
    ``MeterProvider`` with a ``PeriodicExportingMetricReader`` whose interval is longer
    than the run, so no export runs while timing: an export runs on its own thread,
    never on the call's). 16 label sets, cycled, as a service with a few operations and
    buckets would use them.
percall
    A whole stubbed S3 ``HeadObject`` (``before-send`` answers a 200, nothing is sent),
    as in ``bench/overhead.py``: bare botocore, the plugin with ``metrics=prometheus``,
    with ``metrics=otel`` and with ``metrics=off``, each on its own session.

Rounds interleave the variants in a rotating order; each round times a batch of calls per
variant with this thread's CPU time (``time.thread_time``), which other processes on a
busy machine cannot inflate. Ratios and differences are paired per round and summarised
by their median. Benchmarks report; they never assert.
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import Any, Callable

import boto3
from _common import CREDENTIALS, REGION, machine, stubbed_client, summary
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from prometheus_client import CollectorRegistry

import botocore_resilience
from botocore_resilience.metrics import metrics_for
from botocore_resilience.otel_metrics import otel_metrics_for

print = functools.partial(print, flush=True)  # progress shows as it comes


class _NoExport(MetricExporter):
    """An exporter that drops everything (the reader's interval keeps it idle anyway)."""

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _provider() -> MeterProvider:
    reader = PeriodicExportingMetricReader(_NoExport(), export_interval_millis=3_600_000)
    return MeterProvider(metric_readers=[reader])


class _Variant:
    def __init__(self, name: str, call: Callable[[], Any]) -> None:
        self.name = name
        self.call = call
        self.cpu: list[float] = []

    def measure(self, calls: int) -> None:
        call = self.call
        call()
        start = time.thread_time()
        for _ in range(calls):
            call()
        self.cpu.append((time.thread_time() - start) / calls)


def _interleave(variants: list[_Variant], rounds: int, calls: int) -> None:
    for variant in variants:  # warm-up round, not recorded
        variant.measure(max(10, calls // 10))
        variant.cpu.clear()
    for round_ in range(rounds):
        shift = round_ % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            variant.measure(calls)


def _report(variants: list[_Variant]) -> None:
    base = variants[0]
    print("cpu time per call (µs):")
    for variant in variants:
        print(f"  {variant.name:40} {summary([v * 1e6 for v in variant.cpu])}")
    print(f"paired per round against {base.name!r}: ratio, and µs added")
    for variant in variants[1:]:
        ratios = [y / x for x, y in zip(base.cpu, variant.cpu)]
        added = [(y - x) * 1e6 for x, y in zip(base.cpu, variant.cpu)]
        print(f"  {variant.name:40} ratio {summary(ratios)}")
        print(f"  {'':40} added {summary(added)}")


def _cycling(sink: Any) -> Callable[[], None]:
    labels = [
        ("s3", operation, bucket)
        for operation in ("GetObject", "PutObject", "HeadObject", "ListObjectsV2")
        for bucket in ("photos", "logs", "backups", "tmp")
    ]
    state = {"i": 0}

    def call() -> None:
        i = state["i"] = (state["i"] + 1) % len(labels)
        service, operation, bucket = labels[i]
        sink.call_finished(service, operation, bucket, "success", 0.0123)

    return call


def sink(rounds: int, calls: int) -> None:
    print(f"\n## The per-call event alone, {rounds} rounds x {calls} calls per variant")
    prometheus = _Variant("prometheus sink", _cycling(metrics_for(CollectorRegistry(), "botocore")))
    otel = _Variant(
        "otel sink (SDK, idle periodic reader)", _cycling(otel_metrics_for(_provider(), "botocore"))
    )
    _interleave([prometheus, otel], rounds, calls)
    _report([prometheus, otel])


def _plugin_head(**options: Any) -> Callable[[], Any]:
    session = boto3.Session(region_name=REGION, **CREDENTIALS)
    botocore_resilience.install(session, registry=CollectorRegistry(), environ={}, **options)
    client = stubbed_client(session)
    return lambda: client.head_object(Bucket="bench", Key="object")


def percall(rounds: int, calls: int) -> None:
    print(f"\n## Per call: stubbed S3 HeadObject, {rounds} rounds x {calls} calls per variant")
    bare_client = stubbed_client(boto3.Session(region_name=REGION, **CREDENTIALS))
    variants = [
        _Variant("bare botocore", lambda: bare_client.head_object(Bucket="bench", Key="object")),
        _Variant("plugin, metrics=prometheus", _plugin_head(metrics="prometheus")),
        _Variant("plugin, metrics=otel", _plugin_head(metrics="otel", meter_provider=_provider())),
        _Variant("plugin, metrics=off", _plugin_head(metrics="off")),
    ]
    _interleave(variants, rounds, calls)
    _report(variants)
    prometheus, otel = variants[1], variants[2]
    added = [(y - x) * 1e6 for x, y in zip(prometheus.cpu, otel.cpu)]
    print(f"  {'otel - prometheus, µs (paired)':40} {summary(added)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    parser.add_argument("--only", default="sink,percall", help="comma-separated sections")
    args = parser.parse_args()
    print(machine())
    sections = args.only.split(",")
    if "sink" in sections:
        sink(rounds=5 if args.quick else 15, calls=2_000 if args.quick else 20_000)
    if "percall" in sections:
        percall(rounds=4 if args.quick else 200, calls=300 if args.quick else 50)


if __name__ == "__main__":
    main()
