"""What the plugin costs per call with aiobotocore: side by side with bare aiobotocore.

    python bench/aio_overhead.py            # ~1 minute on 2 cores
    python bench/aio_overhead.py --quick    # fewer rounds, for a smoke run
    python bench/aio_overhead.py --only switched,dispatch

Needs aiobotocore (``pip install 'botocore-resilience[aio]'``). As in ``overhead.py``:
an S3 ``HeadObject`` whose transport is stubbed at ``before-send`` (a 200 with the usual
headers, nothing sent), so only aiobotocore's pipeline and the handlers are timed, on
one event loop. Variants, each with its own ``AioSession`` and the same client
``Config``: bare aiobotocore; a second bare client (the A/A control, whose "overhead"
is the noise floor); the plugin (breaker on, metrics on); the plugin with
``metrics=off``. Rounds interleave the variants in a rotating order; each round times a
batch of sequential awaited calls per variant. The main figure is this thread's CPU
time (``time.thread_time``: the loop and the calls all run on it), wall time is
reported next to it. Ratios are taken per round (paired) and summarised by their
median.

Sections: ``handlers`` (the plugin's handlers alone, replayed with the arguments of
one real call), ``percall`` (the above), ``switched`` (one client, the plugin switched on and
off between batches: no second client to differ) and ``dispatch`` (what aiobotocore's
event emitter adds per plain handler, which the plugin's handlers pay and botocore's
emitter does not charge).

Benchmarks report; they never assert.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Callable

from _common import CONFIG, CREDENTIALS, REGION, UNREACHABLE, machine, summary
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.session import AioSession
from botocore.config import Config
from prometheus_client import CollectorRegistry

import botocore_resilience

print = functools.partial(print, flush=True)  # progress shows as it comes

_HEAD_OBJECT_HEADERS = {
    "Content-Length": "5",
    "Content-Type": "binary/octet-stream",
    "ETag": '"5d41402abc4b2a76b9719d911017c592"',
    "Last-Modified": "Tue, 01 Jul 2025 12:00:00 GMT",
    "x-amz-request-id": "0000000000000000",
    "Accept-Ranges": "bytes",
}


class _EmptyBody:
    """What ``AioAWSResponse.raw`` must offer: an awaitable ``read()`` (a HEAD has no body)."""

    async def read(self) -> bytes:
        return b""


def _answer_head_object(request: Any = None, **kwargs: Any) -> AioAWSResponse:
    return AioAWSResponse(request.url, 200, dict(_HEAD_OBJECT_HEADERS), _EmptyBody())


def _session(plugin: bool, **options: Any) -> AioSession:
    session = AioSession()
    session.set_credentials(CREDENTIALS["aws_access_key_id"], CREDENTIALS["aws_secret_access_key"])
    session.set_config_variable("region", REGION)
    if plugin:
        botocore_resilience.install(session, registry=CollectorRegistry(), environ={}, **options)
    return session


@asynccontextmanager
async def _stubbed_client(session: AioSession) -> AsyncIterator[Any]:
    config = CONFIG.merge(Config(s3={"addressing_style": "path"}))
    async with session.create_client(
        "s3", region_name=REGION, endpoint_url=UNREACHABLE, config=config
    ) as client:
        client.meta.events.register_last("before-send.s3", _answer_head_object)
        yield client


class _Variant:
    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client
        self.cpu: list[float] = []
        self.wall: list[float] = []

    async def measure(self, calls: int) -> None:
        head: Callable[..., Any] = self.client.head_object
        cpu, wall = time.thread_time(), time.perf_counter()
        for _ in range(calls):
            await head(Bucket="bench", Key="object")
        self.cpu.append((time.thread_time() - cpu) / calls)
        self.wall.append((time.perf_counter() - wall) / calls)


def _paired(a: list[float], b: list[float]) -> tuple[list[float], list[float]]:
    """Per-round ratios b/a and differences b-a (in microseconds)."""
    return [y / x for x, y in zip(a, b)], [(y - x) * 1e6 for x, y in zip(a, b)]


async def percall(rounds: int, calls: int) -> None:
    print(f"\n## Per call: stubbed S3 HeadObject, {rounds} rounds x {calls} calls per variant")
    async with AsyncExitStack() as stack:
        made = [
            ("bare aiobotocore", _session(False)),
            ("bare aiobotocore, another client (A/A)", _session(False)),
            ("plugin (breaker on, metrics on)", _session(True)),
            ("plugin (breaker on, metrics off)", _session(True, metrics=False)),
        ]
        variants = [
            _Variant(name, await stack.enter_async_context(_stubbed_client(session)))
            for name, session in made
        ]
        for variant in variants:  # warm-up, not recorded
            await variant.measure(max(10, calls))
            variant.cpu.clear()
            variant.wall.clear()
        for round_ in range(rounds):
            shift = round_ % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                await variant.measure(calls)
    bare = variants[0]
    for clock in ("cpu", "wall"):
        print(f"\n{clock} time per call (µs):")
        for variant in variants:
            print(f"  {variant.name:40} {summary([v * 1e6 for v in getattr(variant, clock)])}")
        print(f"{clock} ratio to bare aiobotocore (paired per round) and µs added:")
        for variant in variants[1:]:
            ratios, added = _paired(getattr(bare, clock), getattr(variant, clock))
            best = min(getattr(variant, clock)) / min(getattr(bare, clock))
            print(f"  {variant.name:40} ratio {summary(ratios)}")
            print(f"  {'':40} added {summary(added)}")
            print(f"  {'':40} best-of-rounds ratio {best:.4g}")


async def switched(rounds: int, calls: int) -> None:
    """One client, the plugin switched on and off between batches (the cleanest pairing:
    no second client). Switched off, the handlers still run but return at their first line."""
    print(f"\n## Same client, plugin on vs off, {rounds} rounds x {calls} calls")
    session = _session(False)
    installation = botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    (binding,) = installation._bindings
    async with _stubbed_client(session) as client:
        on, off = _Variant("plugin on (breaker on, metrics on)", client), _Variant("off", client)
        for round_ in range(rounds + 1):
            for variant in (on, off) if round_ % 2 else (off, on):
                binding.handlers.runtime = installation.runtime if variant is on else None
                await variant.measure(calls)
        for variant in (on, off):  # the first round was the warm-up
            del variant.cpu[0], variant.wall[0]
    ratios, added = _paired(off.cpu, on.cpu)
    print(f"  {'switched off, cpu µs':36} {summary([v * 1e6 for v in off.cpu])}")
    print(f"  {'on, cpu µs':36} {summary([v * 1e6 for v in on.cpu])}")
    print(f"  {'on / off (paired per round)':36} ratio {summary(ratios)}")
    print(f"  {'':36} added µs {summary(added)}")


async def dispatch(rounds: int, calls: int) -> None:
    """What aiobotocore's emitter adds per plain (sync) handler: it wraps every handler's
    result in ``resolve_awaitable``. Measured on one event, with one handler vs two."""
    from aiobotocore.hooks import AioHierarchicalEmitter

    print(f"\n## aiobotocore's cost per extra plain handler, {rounds} rounds x {calls} emits")

    def handler(**kwargs: Any) -> None:
        return None

    one, two = AioHierarchicalEmitter(), AioHierarchicalEmitter()
    one.register("before-call.s3.HeadObject", handler)
    two.register("before-call.s3.HeadObject", handler)
    two.register("before-call.s3", functools.partial(handler))
    cpu: dict[int, list[float]] = {1: [], 2: []}
    for _round in range(rounds):
        for n, emitter in ((1, one), (2, two)):
            start = time.thread_time()
            for _ in range(calls):
                await emitter.emit("before-call.s3.HeadObject", model=None, params=None)
            cpu[n].append((time.thread_time() - start) / calls)
    _ratios, added = _paired(cpu[1], cpu[2])
    print(f"  {'one handler, cpu µs per emit':36} {summary([v * 1e6 for v in cpu[1]])}")
    print(f"  {'two handlers':36} {summary([v * 1e6 for v in cpu[2]])}")
    print(f"  {'added per handler, µs':36} {summary(added)}")


_HOT_PATH = (
    ("before-parameter-build", "on_before_parameter_build"),
    ("before-call", "on_before_call"),
    ("request-created", "on_request_created"),
    ("needs-retry", "on_needs_retry"),
    ("after-call", "on_after_call"),
)


async def _record_hot_path() -> list[tuple[Callable[..., Any], dict[str, Any]]]:
    """The plugin's handlers and the exact arguments aiobotocore gave them in one stubbed call."""
    session = _session(False)
    installation = botocore_resilience.install(session, registry=CollectorRegistry(), environ={})
    handlers = installation._bindings[0].handlers
    recorded: list[tuple[Callable[..., Any], dict[str, Any]]] = []
    originals = {method: getattr(handlers, method) for _event, method in _HOT_PATH}

    def recorder(method: str) -> Callable[..., Any]:
        def record(**kwargs: Any) -> Any:
            recorded.append((originals[method], kwargs))
            return originals[method](**kwargs)

        return record

    async with _stubbed_client(session) as client:
        for event, method in _HOT_PATH:
            client.meta.events.register(event, recorder(method), unique_id=f"bench.{event}")
            client.meta.events.unregister(event, unique_id=f"botocore_resilience.{event}")
        await client.head_object(Bucket="bench", Key="object")
    assert [fn.__name__ for fn, _ in recorded] == [m for _e, m in _HOT_PATH], recorded
    return recorded


def handlers(rounds: int, calls: int) -> None:
    """Only the plugin's own handlers, replayed with the arguments of a real aiobotocore call
    (the same functions as for botocore: compare with ``overhead.py --only handlers``)."""
    print(f"\n## The plugin's handlers alone (replayed), {rounds} rounds x {calls} calls")
    recorded = asyncio.run(_record_hot_path())
    cpu = []
    for _round in range(rounds):
        start = time.thread_time()
        for _ in range(calls):
            for handler, kwargs in recorded:
                handler(**kwargs)
        cpu.append((time.thread_time() - start) / calls)
    print(f"  {'handlers, metrics on, cpu µs':36} {summary([v * 1e6 for v in cpu])}")


SECTIONS = ("handlers", "percall", "switched", "dispatch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = parser.parse_args()
    sections = set(args.only.split(","))
    import aiobotocore

    print(f"{machine()}; aiobotocore {aiobotocore.__version__}")
    if "handlers" in sections:
        handlers(rounds=6 if args.quick else 30, calls=1000 if args.quick else 3000)
    if "percall" in sections:
        asyncio.run(percall(rounds=20 if args.quick else 300, calls=20))
    if "switched" in sections:
        asyncio.run(switched(rounds=20 if args.quick else 300, calls=20))
    if "dispatch" in sections:
        asyncio.run(dispatch(rounds=10 if args.quick else 50, calls=2000))


if __name__ == "__main__":
    main()
