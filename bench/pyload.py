"""A Python HTTPS load generator: keep-alive HTTP/1.1 GETs over asyncio streams, in several processes.

Used where wrk is missing, and always for the library latency (wrk prints no p95). One client process would
measure Python's GIL rather than the server, so the connections are spread over `processes` worker
processes (uvloop when installed), each its own event loop. The certificate is verified against Vault's CA.
Every connection sends its next request when the last response is read in full; the run stops at the time
limit or the request budget, whichever comes first. Latency is from writing the request to the last byte.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


@dataclass
class Shard:
    count: int
    body_bytes: int
    errors: int  # non-2xx answers and broken connections
    latencies: list[float]  # seconds
    start: float  # wall clock when loading began
    end: float  # wall clock of the last completed response


def _context(cafile: str | None) -> ssl.SSLContext:
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # nginx on a copied certificate
    return context


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status and the header fields (names lower-cased) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    return status, {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:]
                                                                 if line)}


async def read_body(reader: asyncio.StreamReader, fields: dict[str, str]) -> bytes:
    """The body that follows `fields`: Content-Length or chunked."""
    if "content-length" in fields:
        return await reader.readexactly(int(fields["content-length"]))
    if fields.get("transfer-encoding", "").lower() == "chunked":
        pieces = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            pieces.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")
        return b"".join(pieces)
    return await reader.read()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
    """(status, body bytes) of one response."""
    status, fields = await read_head(reader)
    return status, len(await read_body(reader, fields))


async def _open(url: str, context: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    return await asyncio.open_connection(parts.hostname, parts.port, ssl=context, server_hostname="localhost",
                                         limit=1 << 20)


async def _loop(request: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, stop: float,
                budget: list[int], shard: Shard) -> None:
    try:
        while budget[0] > 0 and time.time() < stop:
            budget[0] -= 1
            sent = time.perf_counter()
            writer.write(request)
            status, size = await _read_response(reader)
            shard.latencies.append(time.perf_counter() - sent)
            shard.count, shard.body_bytes, shard.end = shard.count + 1, shard.body_bytes + size, time.time()
            shard.errors += not 200 <= status < 300
    except (OSError, asyncio.IncompleteReadError, ValueError):
        shard.errors += 1
    finally:
        writer.close()


async def _shard(url: str, headers: dict[str, str], cafile: str | None, connections: int, seconds: float,
                 budget: int, barrier) -> Shard:
    """Open every connection (TLS handshakes are not measured), wait for the other processes, then load."""
    parts = urlsplit(url)
    request = (f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
               f"Host: {parts.netloc}\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    context = _context(cafile)
    opened = await asyncio.gather(*(_open(url, context) for _ in range(connections)), return_exceptions=True)
    barrier.wait(120)
    start = time.time()
    shard, left = Shard(0, 0, 0, [], start, start), [budget]
    shard.errors += sum(isinstance(o, BaseException) for o in opened)
    await asyncio.gather(*(_loop(request, *o, start + seconds, left, shard)
                           for o in opened if not isinstance(o, BaseException)))
    return shard


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """Run a load generator's coroutine on uvloop where it is installed (less client CPU), else asyncio's."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def _worker(results, args: tuple) -> None:
    try:
        results.put(run_fast(_shard(*args)))
    except Exception as exc:  # reported by the parent instead of a hang
        args[-1].abort()  # the barrier: the parent and the other workers stop waiting
        results.put(exc)


def run(url: str, headers: dict[str, str], cafile: str | None, connections: int, seconds: float,
        max_requests: int, processes: int, on_start=None) -> list[Shard]:
    """One run's shards; connections are spread over processes, which all start loading at one instant.

    `on_start()` is called at that instant (to snapshot the server's CPU time).
    """
    processes = max(1, min(processes, connections))
    split = [connections // processes + (i < connections % processes) for i in range(processes)]
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes + 1), ctx.Queue()
    workers = [ctx.Process(target=_worker, daemon=True,
                           args=(results, (url, headers, cafile, n, seconds,
                                           max(1, max_requests * n // connections), barrier)))
               for n in split]
    for w in workers:
        w.start()
    try:
        try:
            barrier.wait(120)
        except threading.BrokenBarrierError:
            raise RuntimeError(f"load generator failed to start: {results.get(timeout=10)!r}") from None
        if on_start:
            on_start()
        shards = [results.get(timeout=seconds + 120) for _ in workers]
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.terminate()
    failed = [s for s in shards if isinstance(s, Exception)]
    if failed:
        raise RuntimeError(f"load generator failed: {failed[0]!r}")
    return shards
