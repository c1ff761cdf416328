"""A video still converting, in a real headless Chromium against a real Vault: its tile says how far it is,
it opens and plays from the beginning while its playlists grow, past what existed when playback started,
and the tile becomes an ordinary one when the video is ready.

The browser, the page helpers and the skip when there is no browser come from tests/test_browser.py.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import wait_for
from tests.test_browser import Vault, _close_pages, browser, open_page, sign_in, wait_js  # noqa: F401
from vaultserver.services.converting import CONVERTING

pytestmark = pytest.mark.slow
NAME = "holiday.mp4"
VIDEO = "document.querySelector('#stage video')"

# Every rung's playlist as the server lists it now: how many seconds it names, and whether it has ended.
LISTED = """async (id) => {
  const get = (url) => fetch(url, {cache: 'no-store'}).then((r) => r.text());
  const masterUrl = new URL(`/api/media/stream/${id}`, location.origin);
  const rungs = (await get(masterUrl)).split('\\n').filter((line) => line && !line.startsWith('#'));
  const playlists = await Promise.all(rungs.map((uri) => get(new URL(uri, masterUrl))));
  return playlists.map((text) => ({
    seconds: [...text.matchAll(/#EXTINF:([\\d.]+)/g)].reduce((sum, m) => sum + Number(m[1]), 0),
    event: text.includes('#EXT-X-PLAYLIST-TYPE:EVENT'),
    ended: text.includes('#EXT-X-ENDLIST'),
  }));
}"""

# Notes whether the player ever said "Starting soon…" (it may come and go between two polls from here).
WATCH_STARTING = """(() => {
  window.sawStartingSoon = false;
  new MutationObserver(() => {
    if (document.querySelector('#stage .player-status')?.textContent.includes('Starting soon')) {
      window.sawStartingSoon = true;
    }
  }).observe(document.getElementById('stage'), {childList: true, subtree: true});
})()"""


def converting_item(services):
    return next((item for item in services.library.all_items() if item.status == CONVERTING), None)


def test_a_converting_video_shows_its_progress_plays_from_the_start_past_what_existed_then_turns_ready(
        browser, server, services, paths, imports, media, tmp_path):  # noqa: F811
    vault = Vault(f"https://localhost:{server.endpoint.port}/", services, paths, server.endpoint.port, {})
    media.copy_into(media.video(seconds=75, size="1280x720"), imports, NAME)
    item = wait_for(lambda: converting_item(services), timeout=120)

    page, problems = open_page(browser, vault, expected_statuses={404})  # the master, before it exists
    stream_404s: list[str] = []
    page.on("response", lambda r: r.status == 404 and "/stream/" in r.url and stream_404s.append(r.url))
    sign_in(page)
    tile = page.locator(f".tile.converting[data-id='{item.id}']")
    tile.wait_for()
    first = tile.locator(".percent").text_content()
    assert re.fullmatch(r"Converting \d{1,2}%", first), first
    assert " ".join(tile.text_content().split()) == f"{NAME}, {first}"  # what a screen reader hears
    assert tile.locator("img").count() == 0  # no pictures before the commit: nothing to fail loading
    # its progress is re-read while it is on screen
    percent = f"document.querySelector(\".tile[data-id='{item.id}'] .percent\").textContent"
    wait_js(page, f"{percent} !== '{first}'", 30)

    page.evaluate(WATCH_STARTING)
    tile.click()
    assert "Still converting" in page.inner_text("#viewer-meta")
    wait_js(page, f"{VIDEO}?.currentTime > 0 && !{VIDEO}.paused", 180)
    started_at = page.evaluate(f"{VIDEO}.currentTime")
    listed = page.evaluate(LISTED, item.id)
    assert all(rung["event"] and not rung["ended"] for rung in listed), "the ladder finished before playback"
    existed = max(rung["seconds"] for rung in listed)
    assert started_at < 2, f"started at {started_at} s, not at the beginning"
    assert existed < 75 - 10, f"{existed} s were already converted"
    if stream_404s:
        assert page.evaluate("window.sawStartingSoon"), "the master was not there yet, but nothing said so"

    # It keeps following the growing playlists: past the end of what was there when playback started.
    deadline = time.monotonic() + existed + 120
    while (now := page.evaluate(f"{VIDEO}.currentTime")) <= existed + 1:
        assert time.monotonic() < deadline, f"stuck at {now} s (listed at the start: {existed} s)"
        assert page.locator("#stage .player-error").count() == 0, page.inner_text("#stage")
        assert page.evaluate(f"{VIDEO}.error") is None
        time.sleep(0.5)

    page.click("#viewer-close")
    wait_for(lambda: services.library.get(item.id).status == "ready", timeout=300)
    ready = page.locator(f".tile.loaded:not(.converting)[data-id='{item.id}']")
    ready.wait_for(timeout=20_000)  # the next refresh replaces the placeholder with the real tile
    assert " ".join(ready.text_content().split()) == "Video, 1:15"
    assert ready.locator("img.thumb").get_attribute("alt") == NAME
    assert problems == []
