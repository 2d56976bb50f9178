"""Measure the deployment transport against hypercorn (not a test; prints a table).

    .venv/bin/python -m tests.server.invoker.bench_transport [--uvloop]

Rows: PING round trip (HTTP/2 frame level, no app); a 16-byte echo round trip on one open
stream (what a BIDI notification and its answer cost); unary requests (open, send, end, read
to end) run N at a time over ONE connection; the same over HTTP/1.1; one stream echoing
64 MiB. The server is ``transport_apps`` under hypercorn in its own process, so the figures
include hypercorn's (Python) cost on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from perdure.server.invoker.http2 import H2Connection, H2Stream
from perdure.server.invoker.http2_pool import H2Pool
from perdure.server.invoker.transport import TransportPool
from tests.server.invoker.transport_servers import HypercornDeployment

HOST = "127.0.0.1"


async def _read_exactly(stream: H2Stream, size: int) -> None:
    got = 0
    while got < size:
        chunk = await stream.read()
        if not chunk:
            raise RuntimeError("stream ended early")
        got += len(chunk)


def _row(name: str, value: str, detail: str = "") -> None:
    print(f"| {name:<46} | {value:>22} | {detail:<34} |")


async def bench(port: int) -> None:
    connection = await H2Connection.connect(HOST, port, connect_timeout=10)
    for _ in range(200):  # warm up
        await connection.ping()
    pings = [await connection.ping() for _ in range(2000)]
    _row(
        "HTTP/2 PING round trip",
        f"p50 {statistics.median(pings) * 1e6:.0f} us",
        f"p99 {sorted(pings)[int(len(pings) * 0.99)] * 1e6:.0f} us, n=2000",
    )

    stream = await connection.open_stream("POST", "/echo")
    message = b"x" * 16
    for _ in range(200):
        await stream.send(message)
        await _read_exactly(stream, len(message))
    rtts = []
    for _ in range(5000):
        started = time.perf_counter()
        await stream.send(message)
        await _read_exactly(stream, len(message))
        rtts.append(time.perf_counter() - started)
    await stream.end()
    _row(
        "16 B echo round trip, one open stream",
        f"p50 {statistics.median(rtts) * 1e6:.0f} us",
        f"p99 {sorted(rtts)[int(len(rtts) * 0.99)] * 1e6:.0f} us, n=5000",
    )
    await connection.aclose()

    async with H2Pool() as pool:
        for concurrency in (1, 10, 100, 500):
            total = 2000 if concurrency > 1 else 1000
            gate = asyncio.Semaphore(concurrency)

            async def unary(n: int, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    s = await pool.open_stream(HOST, port, "POST", "/echo")
                    await s.send(b"%016d" % n)
                    await s.end()
                    while await s.read():
                        pass

            await asyncio.gather(*(unary(n) for n in range(200)))  # warm up
            started = time.perf_counter()
            await asyncio.gather(*(unary(n) for n in range(total)))
            elapsed = time.perf_counter() - started
            assert len(pool.connections(HOST, port)) == 1
            _row(
                f"HTTP/2 unary streams, {concurrency} concurrent, 1 connection",
                f"{total / elapsed:,.0f} streams/s",
                f"{elapsed / total * 1e6:.0f} us/stream, n={total}",
            )

    transport = TransportPool()
    try:
        for concurrency in (1, 10, 100):
            total = 2000 if concurrency > 1 else 1000
            gate = asyncio.Semaphore(concurrency)

            async def unary_h1(n: int, gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    s = await transport.open_invocation_stream(
                        f"http://{HOST}:{port}", "HTTP/1.1", "/echo", {}
                    )
                    await s.send(b"%016d" % n)
                    await s.end()
                    while await s.read():
                        pass
                    await s.close()

            await asyncio.gather(*(unary_h1(n) for n in range(100)))
            started = time.perf_counter()
            await asyncio.gather(*(unary_h1(n) for n in range(total)))
            elapsed = time.perf_counter() - started
            _row(
                f"HTTP/1.1 requests, {concurrency} concurrent (pooled)",
                f"{total / elapsed:,.0f} req/s",
                f"{elapsed / total * 1e6:.0f} us/request, n={total}",
            )
    finally:
        await transport.close()

    connection = await H2Connection.connect(HOST, port, connect_timeout=10)
    size = 64 * 1024 * 1024
    block = b"\0" * (1024 * 1024)
    stream = await connection.open_stream("POST", "/echo")
    started = time.perf_counter()

    async def upload() -> None:
        for _ in range(size // len(block)):
            await stream.send(block)
        await stream.end()

    sender = asyncio.create_task(upload())
    received = 0
    while chunk := await stream.read():
        received += len(chunk)
    await sender
    elapsed = time.perf_counter() - started
    _row(
        "64 MiB echoed on one stream (both ways at once)",
        f"{size / elapsed / 2**20:,.0f} MiB/s each way",
        f"{elapsed:.2f} s",
    )
    await connection.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    args = parser.parse_args()
    server = HypercornDeployment(Path(tempfile.mkdtemp(prefix="bench-transport-"))).start()
    try:
        print(f"| {'measurement':<46} | {'result':>22} | {'detail':<34} |")
        print(f"|{'-' * 48}|{'-' * 24}|{'-' * 36}|")
        if args.uvloop:
            import uvloop

            uvloop.run(bench(server.port))
        else:
            asyncio.run(bench(server.port))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
