"""What watching a GetObject body costs a healthy read (botocore_resilience.bodies).

A body of 8 MiB in memory read in 256 KiB chunks (s3transfer's download chunk) and whole,
plain botocore StreamingBody against the same body watched, interleaved rounds; reports
the median time per read() call and the difference. No network: the cost measured is the
wrapper's alone (a real read adds the socket's time to both sides).

    python bench/body_watch.py
"""

from __future__ import annotations

import io
import statistics
import time

from botocore.response import StreamingBody

from botocore_resilience.bodies import watch_body
from botocore_resilience.breaker import BreakerPolicy, CircuitBreaker

SIZE = 8 * 1024 * 1024
CHUNK = 256 * 1024
DATA = b"x" * SIZE
ROUNDS = 200


def _body(watched: bool, breaker: CircuitBreaker) -> StreamingBody:
    body = StreamingBody(io.BytesIO(DATA), SIZE)
    if watched:
        permit = breaker.admit()
        watch_body(body, breaker, permit)  # type: ignore[arg-type]
    return body


def _chunked(body: StreamingBody) -> int:
    reads = 0
    while body.read(CHUNK):
        reads += 1
    return reads + 1


def main() -> None:
    breaker = CircuitBreaker("bench", BreakerPolicy())
    per_read: dict[bool, list[float]] = {False: [], True: []}
    whole: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(ROUNDS):
        for watched in (False, True):
            body = _body(watched, breaker)
            start = time.perf_counter()
            reads = _chunked(body)
            per_read[watched].append((time.perf_counter() - start) / reads)
            body = _body(watched, breaker)
            start = time.perf_counter()
            body.read()
            whole[watched].append(time.perf_counter() - start)
    for name, samples in (("256 KiB read()", per_read), ("whole 8 MiB read()", whole)):
        plain, watched = statistics.median(samples[False]), statistics.median(samples[True])
        print(
            f"{name:20s} plain {plain * 1e6:9.2f} us  watched {watched * 1e6:9.2f} us  "
            f"difference {(watched - plain) * 1e9:8.0f} ns ({(watched / plain - 1) * 100:+.2f} %)"
        )


if __name__ == "__main__":
    main()
