"""The family-evening load: people playing one video like hls.js, and people scrolling the photo grid.

A viewer fetches the master playlist, picks the top rendition (on loopback a player's bandwidth estimate
always picks it), fetches its playlist and its key once, then fetches segments one at a time on one
keep-alive connection, keeping BUFFER_AHEAD seconds buffered ahead of a playhead that moves in real time
from the moment the first segment arrives. It records each segment's time to first byte (request written
to response head read) and every stall: the playhead catching the end of the buffer. Viewers start a
moment apart, at different places in the video, and loop it.

A grid scroller, once a second, fetches a library page of PAGE_ITEMS items and then the page's thumbnails
over BROWSER_CONNECTIONS keep-alive connections, as a browser does over HTTP/1.1; the page's time is from
the listing request to the last thumbnail. A page that overruns delays the next (no backlog is fired).

Each kind runs in its own process (`start()`), one asyncio event loop each (uvloop when installed), so the
load generator stays small beside the server on a 2-core machine and its CPU can be read from /proc.
Samples carry wall-clock times, so the parent can split them into phases after the run.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import ssl
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any
from urllib.parse import urljoin

from bench.pyload import read_body, read_head, run_fast

BUFFER_AHEAD = 30.0  # seconds of video a player keeps buffered (hls.js maxBufferLength)
PAGE_ITEMS = 24
BROWSER_CONNECTIONS = 6
REQUEST_TIMEOUT = 30.0
_BANDWIDTH = re.compile(r"BANDWIDTH=(\d+)")
_KEY_URI = re.compile(r'#EXT-X-KEY:.*URI="([^"]+)"')


@dataclass(frozen=True)
class Site:
    host: str
    port: int
    token: str
    cafile: str
    stream_url: str  # the video's master playlist


@dataclass
class Samples:
    segments: list[tuple[float, float]] = field(default_factory=list)  # (sent at, time to first byte s)
    pages: list[tuple[float, float, int]] = field(default_factory=list)  # (started at, seconds, errors)
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (began at, seconds)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (at, what)

    def extend(self, other: Samples) -> None:
        for name in ("segments", "pages", "stalls", "errors"):
            getattr(self, name).extend(getattr(other, name))


@dataclass(frozen=True)
class Answer:
    status: int
    ttfb: float  # seconds
    body: bytes


def top_variant(master: str, base: str) -> str:
    """The URL of the rendition with the highest BANDWIDTH in a master playlist, resolved against `base`."""
    lines = master.splitlines()
    best = max((int(found[1]), lines[i + 1].strip()) for i, line in enumerate(lines)
               if (found := _BANDWIDTH.search(line)) and line.startswith("#EXT-X-STREAM-INF"))
    return urljoin(base, best[1])


def media_playlist(text: str, base: str) -> tuple[str | None, list[tuple[str, float]]]:
    """(key URL or None, [(segment URL, seconds)]) of a media playlist, URLs resolved against `base`."""
    key = _KEY_URI.search(text)
    segments, duration = [], None
    for line in map(str.strip, text.splitlines()):
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append((urljoin(base, line), duration))
            duration = None
    return (urljoin(base, key[1]) if key else None), segments


class Playhead:
    """A real-time player's position: it starts with the first segment and waits while the buffer is empty."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.buffered = 0.0  # seconds of video received
        self.stalled = 0.0  # seconds spent waiting on an empty buffer

    def ahead(self, now: float) -> float:
        """Seconds buffered ahead of the playhead (negative: the player has been waiting that long)."""
        return 0.0 if self.started is None else self.buffered - (now - self.started - self.stalled)

    def add(self, seconds: float, now: float) -> tuple[float, float] | None:
        """A segment of `seconds` arrived at `now`; (stall start, stall length) if the buffer ran dry."""
        if self.started is None:
            self.started, self.buffered = now, seconds
            return None
        behind = -self.ahead(now)
        stall = (self.started + self.stalled + self.buffered, behind) if behind > 0 else None
        self.stalled += max(0.0, behind)
        self.buffered += seconds
        return stall


class Connection:
    """One keep-alive HTTPS connection, reopened when the server has closed it (as browsers do)."""

    def __init__(self, site: Site, context: ssl.SSLContext) -> None:
        self.site, self.context = site, context
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        self.reader = self.writer = None

    async def get(self, path: str) -> Answer:
        request = (f"GET {path} HTTP/1.1\r\nHost: {self.site.host}:{self.site.port}\r\n"
                   f"Authorization: Bearer {self.site.token}\r\n\r\n").encode()
        for retry in (False, True):
            reused = self.writer is not None
            if not reused:
                self.reader, self.writer = await asyncio.open_connection(
                    self.site.host, self.site.port, ssl=self.context, server_hostname="localhost",
                    limit=1 << 20)
            assert self.reader and self.writer
            sent = time.perf_counter()
            try:
                self.writer.write(request)
                status, fields = await read_head(self.reader)
            except (OSError, asyncio.IncompleteReadError):
                self.close()
                if reused and not retry:  # closed while idle: not an answer from the server
                    continue
                raise
            ttfb = time.perf_counter() - sent
            try:
                body = await read_body(self.reader, fields)
            except BaseException:
                self.close()
                raise
            if fields.get("connection", "").lower() == "close":
                self.close()
            return Answer(status, ttfb, body)
        raise AssertionError("unreachable")

    async def fetch(self, path: str, out: Samples, what: str) -> Answer | None:
        """GET `path`; None (and an error recorded) on a non-2xx answer, a broken connection or a timeout."""
        try:
            answer = await asyncio.wait_for(self.get(path), REQUEST_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            self.close()
            out.errors.append((time.time(), f"{what}: {type(exc).__name__}"))
            return None
        if not 200 <= answer.status < 300:
            out.errors.append((time.time(), f"{what}: HTTP {answer.status}"))
            return None
        return answer


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    if seconds > 0:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            pass


async def _viewer(n: int, count: int, site: Site, context: ssl.SSLContext, stop: asyncio.Event,
                  out: Samples) -> None:
    await _pause(stop, 8.0 * n / count)  # people start a moment apart
    conn = Connection(site, context)
    master = await conn.fetch(site.stream_url, out, "master playlist")
    variant_url = top_variant(master.body.decode(), site.stream_url) if master else None
    variant = await conn.fetch(variant_url, out, "media playlist") if variant_url else None
    if not variant or not variant_url:
        return
    key, segments = media_playlist(variant.body.decode(), variant_url)
    if key:
        await conn.fetch(key, out, "key")
    index, player = n * len(segments) // count, Playhead()  # each at a different place in the video
    while not stop.is_set():
        ahead = player.ahead(time.time())
        if ahead >= BUFFER_AHEAD:
            await _pause(stop, ahead - BUFFER_AHEAD + 0.01)
            continue
        url, seconds = segments[index % len(segments)]
        sent = time.time()
        answer = await conn.fetch(url, out, "segment")
        if answer is None:
            await _pause(stop, 1.0)  # hls.js retries the same segment after a moment
            continue
        out.segments.append((sent, answer.ttfb))
        if stall := player.add(seconds, time.time()):
            out.stalls.append(stall)
        index += 1


async def _thumbnails(conn: Connection, todo: list[str], out: Samples) -> None:
    """One browser connection's share of a page's thumbnails: the next one not yet asked for, in turn."""
    while todo:
        await conn.fetch(f"/api/media/thumbnail/{todo.pop(0)}", out, "thumbnail")


async def _scroller(n: int, count: int, site: Site, context: ssl.SSLContext, stop: asyncio.Event,
                    out: Samples) -> None:
    await _pause(stop, n / count)  # the scrollers' seconds do not all start at the same instant
    conns = [Connection(site, context) for _ in range(BROWSER_CONNECTIONS)]
    page, tick = 1 + 3 * n, time.time()
    while not stop.is_set():
        started, clock, before = time.time(), time.perf_counter(), len(out.errors)
        listing = await conns[0].fetch(f"/api/media/library?limit={PAGE_ITEMS}&page={page}", out, "library")
        data: dict[str, Any] = json.loads(listing.body) if listing else {}
        todo = [item["id"] for item in data.get("items", [])]
        await asyncio.gather(*(_thumbnails(c, todo, out) for c in conns))
        out.pages.append((started, time.perf_counter() - clock, len(out.errors) - before))
        page = page % max(1, data.get("pagination", {}).get("pages", 1)) + 1
        tick = max(tick + 1.0, time.time())
        await _pause(stop, tick - time.time())


async def _load(site: Site, viewers: int, scrollers: int, stopped: Any) -> Samples:
    context = ssl.create_default_context(cafile=site.cafile)
    context.check_hostname = False  # connected by address; the certificate is still verified
    out, stop = Samples(), asyncio.Event()
    tasks = [asyncio.create_task(_viewer(n, viewers, site, context, stop, out)) for n in range(viewers)]
    tasks += [asyncio.create_task(_scroller(n, scrollers, site, context, stop, out))
              for n in range(scrollers)]
    while not stopped.is_set():
        await asyncio.sleep(0.2)
    stop.set()
    for task in tasks:  # what is in flight now ends after the last phase: not a sample
        task.cancel()
    for failed in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(failed, BaseException) and not isinstance(failed, asyncio.CancelledError):
            out.errors.append((time.time(), f"client crashed: {failed!r}"))
    return out


def _process(site: Site, viewers: int, scrollers: int, stopped: Any, results: Any) -> None:
    try:
        results.put(run_fast(_load(site, viewers, scrollers, stopped)))
    except Exception as exc:  # reported by the parent instead of a wait for samples that never come
        results.put(exc)


class Load:
    """The load generator's processes: `start()`, then `stop()` returns every sample."""

    def __init__(self, site: Site, viewers: int, scrollers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.stopped, self.results = ctx.Event(), ctx.Queue()
        self.processes: list[BaseProcess] = [
            ctx.Process(target=_process, args=(site, v, s, self.stopped, self.results), daemon=True)
            for v, s in ((viewers, 0), (0, scrollers)) if v or s]

    def start(self) -> None:
        for p in self.processes:
            p.start()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def stop(self) -> Samples:
        self.stopped.set()
        merged = Samples()
        try:
            for _ in self.processes:
                got = self.results.get(timeout=60)
                if isinstance(got, Exception):
                    raise RuntimeError(f"load generator failed: {got!r}")
                merged.extend(got)
        finally:
            for p in self.processes:
                p.join(10)
                if p.is_alive():
                    p.terminate()
        return merged
