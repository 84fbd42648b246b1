"""One worker process of a fleet test (or bench): ``python worker.py '<json options>'``.

It installs the plugin (with the options given, e.g. ``state_url``), makes one S3 client
for the test's local S3, prints ``{"ev": "ready"}`` and waits for ``go`` on stdin. Then
``threads`` threads call ``GetObject`` on ``key`` (each worker has its own key, so the
server can tell the workers' requests apart):

* plan ``until_open``: each thread stops at its first ``CircuitBreakerOpen``;
* plan ``loop``: each thread calls until ``stop`` arrives on stdin (a rejected call waits
  ``pause`` seconds before the next one, so that rejections do not spin the CPU);
* plan ``once``: one call, then wait for the next ``go`` (repeatable) or ``stop``.

It prints one JSON line per event, flushed: ``transition`` (from the plugin's log
records), ``call`` (plan ``once``), and finally ``summary``: every call's outcome counted
by kind. ``other`` counts anything that is neither a response, a service error nor
``CircuitBreakerOpen``: an error of ours (a store failure leaking into a call) would
land there, with its type in ``other_types``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

_print_lock = threading.Lock()


def emit(event: dict[str, Any]) -> None:
    line = json.dumps(event)
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class _Transitions(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        transition = getattr(record, "transition", None)
        if transition is not None:
            emit(
                {
                    "ev": "transition",
                    "pid": os.getpid(),
                    "from": transition.from_state.value,
                    "to": transition.to_state.value,
                    "cause": transition.cause,
                    "t": time.monotonic(),
                }
            )
        elif record.levelno >= logging.WARNING:
            emit({"ev": "log", "level": record.levelname, "msg": record.getMessage()})


def main() -> None:
    options = json.loads(sys.argv[1])
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from prometheus_client import CollectorRegistry, generate_latest

    import botocore_resilience
    from botocore_resilience.testing._clients import make_client, make_session

    logger = logging.getLogger("botocore_resilience")
    logger.setLevel(logging.INFO)
    logger.addHandler(_Transitions())
    logger.propagate = False

    lease = options.get("probe_lease")
    if lease is not None:
        # What the handlers would set from the client's timeouts: how long one call may
        # take at most. A SIGKILLed prober's slot is free again after this.
        import dataclasses

        from botocore_resilience import runtime

        policy_of = runtime._policy

        def with_lease(*args: Any, **kwargs: Any) -> Any:
            return dataclasses.replace(policy_of(*args, **kwargs), probe_lease=lease)

        runtime._policy = with_lease

    registry = CollectorRegistry()
    session = make_session()
    botocore_resilience.install(
        session, registry=registry, environ={}, **options.get("install", {})
    )
    threads = int(options.get("threads", 4))
    timeout = float(options.get("client_timeout", 5.0))
    client = make_client(
        options["endpoint"],
        session=session,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=timeout,
            read_timeout=timeout,
            max_pool_connections=threads * 2,
        ),
    )
    if options.get("trace_sends"):
        from botocore_resilience import handlers

        def _traced(request: Any, **_: Any) -> None:
            call = request.context.get(handlers.CALL_KEY)
            permit = getattr(call, "permit", None)
            breaker = getattr(call, "breaker", None)
            emit(
                {
                    "ev": "send",
                    "t": time.monotonic(),
                    "permit": repr(permit),
                    "type": type(permit).__name__,
                    "mirror": repr(breaker),
                }
            )

        client.meta.events.register("before-send", _traced)
    bucket, key = options["bucket"], options["key"]
    plan = options.get("plan", "until_open")
    pause = float(options.get("pause", 0.005))
    healthy_pause = float(options.get("healthy_pause", 0.0))
    outcomes: Counter[str] = Counter()
    other_types: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    first_rejection: list[float] = []

    def call() -> str:
        try:
            client.get_object(Bucket=bucket, Key=key)["Body"].read()
            return "ok"
        except botocore_resilience.CircuitBreakerOpen:
            return "open"
        except ClientError as error:
            return "error:" + str(error.response.get("Error", {}).get("Code", "?"))
        except Exception as error:  # what must never happen because of the store
            with lock:
                other_types[type(error).__name__] += 1
            return "other"

    def run() -> None:
        while not stop.is_set():
            outcome = call()
            with lock:
                outcomes[outcome] += 1
                first = outcome == "open" and not first_rejection
                if first:
                    first_rejection.append(time.monotonic())
            if first:
                emit({"ev": "first_open", "pid": os.getpid(), "t": first_rejection[0]})
            if outcome == "open":
                if plan == "until_open":
                    return
                stop.wait(pause)
            elif healthy_pause:
                stop.wait(healthy_pause)

    emit({"ev": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        command = line.strip()
        if command == "go" and plan == "once":
            outcome = call()
            outcomes[outcome] += 1
            emit({"ev": "call", "pid": os.getpid(), "r": outcome})
            continue
        if command == "go":
            workers = [threading.Thread(target=run) for _ in range(threads)]
            for worker in workers:
                worker.start()
            if plan == "loop":
                for line in sys.stdin:
                    if line.strip() == "stop":
                        break
                    if line.strip() == "rearm":  # report the next first rejection too
                        with lock:
                            first_rejection.clear()
                        emit({"ev": "rearmed"})
                stop.set()
            for worker in workers:
                worker.join()
        if command in ("go", "stop"):
            break
    metrics = generate_latest(registry).decode()
    emit(
        {
            "ev": "summary",
            "pid": os.getpid(),
            "outcomes": dict(outcomes),
            "other_types": dict(other_types),
            "store_metrics": [m for m in metrics.splitlines() if "state_store" in m],
        }
    )


if __name__ == "__main__":
    main()
