"""Accessibility of the gallery, checked by axe-core (Deque's engine, vendored in tests/vendor) in a real
headless Chromium: the sign-in page, the grid, the open viewer (a photo and a video), the albums view,
"My devices" and an album, at a desktop and a phone size. Any critical or serious violation fails.

The server, browser and page helpers come from tests/test_browser.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import VIEWER, VIEWER_PASSWORD
from tests.test_browser import (  # noqa: F401
    DESKTOP,
    PHONE_UA,
    VIDEO_NAME,
    Vault,
    _close_pages,
    browser,
    open_page,
    signed_in,
    vault,
    wait_js,
)

pytestmark = pytest.mark.slow
AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "user_agent": PHONE_UA}
SIZES = {"desktop": {"viewport": DESKTOP}, "phone": PHONE}

# The violations that fail a test, each with the elements it found (selector and axe's summary).
SERIOUS = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter((v) => v.impact === 'critical' || v.impact === 'serious')
    .map((v) => `${v.id} (${v.impact}): ${v.help}\\n` + v.nodes.map(
      (n) => `    ${n.target.join(' ')}: ${n.failureSummary.replace(/\\s+/g, ' ')}`).join('\\n'));
}"""


def assert_accessible(page, where: str) -> None:
    """Run axe on the page as it is now. (Evaluated through the debugger, so the page keeps its CSP.)"""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE)
    violations = page.evaluate(SERIOUS)
    assert not violations, f"{where}:\n" + "\n".join(violations)


@pytest.mark.parametrize("size", SIZES)
def test_sign_in_grid_and_viewer_have_no_serious_accessibility_violations(browser, vault, size):  # noqa: F811
    page, problems = open_page(browser, vault, **SIZES[size])
    page.wait_for_selector("#signin-view:not([hidden])")
    assert_accessible(page, f"sign-in page, {size}")

    signed_in(page)
    wait_js(page, "[...document.querySelectorAll('.tile img.thumb')].every(i => i.complete)")
    assert_accessible(page, f"grid, {size}")

    page.click(f".tile[data-id='{vault.item('beach.jpg').id}']")
    wait_js(page, "document.querySelector('#stage .frame.ready')")
    assert_accessible(page, f"viewer with a photo, {size}")

    page.click("#viewer-next")  # dunes.jpg
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")
    page.click(f".tile[data-id='{vault.item(VIDEO_NAME).id}']")
    page.wait_for_selector("#quality-tools:not([hidden])")
    wait_js(page, "document.querySelector('#stage video')?.readyState >= 2", 60)
    assert_accessible(page, f"viewer with a video, {size}")
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")

    page.click("#devices-link")
    page.wait_for_selector("#devices-view:not([hidden]) .device")
    assert_accessible(page, f"my devices, {size}")

    album = an_album(vault)
    page.click("#nav-albums")
    page.wait_for_selector(f"#albums-view:not([hidden]) .album-card[data-id='{album}'] img")
    assert_accessible(page, f"albums view, {size}")
    page.click(f".album-card[data-id='{album}'] a")
    page.wait_for_selector("#album-tools:not([hidden])")
    assert_accessible(page, f"an album, {size}")
    assert problems == []


def an_album(server: Vault) -> str:
    """The viewer account's album "Summer" with two photos (made once per server)."""
    client = server.client()
    assert client.login(VIEWER, VIEWER_PASSWORD).status == 200
    albums = client.request("GET", "/api/albums").json()["albums"]
    if albums:
        return albums[0]["id"]
    album = client.request("POST", "/api/albums", {"name": "Summer"}).json()
    photos = [server.item(name).id for name in ("beach.jpg", "lake.jpg")]
    assert client.request("POST", f"/api/albums/{album['id']}/items", {"media_ids": photos}).status == 200
    return album["id"]
