"""The gallery in a real headless Chromium against a real Vault: sign in, browse, view, play, sign out."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import OWNER, OWNER_PASSWORD, VIEWER, VIEWER_PASSWORD

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run must install Debian's chromium", pytrace=False)
    pytest.skip(f"browser tests need {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def gallery(server, services, media):
    imports = services.settings.current.import_path(services.paths)
    media.copy_into(media.image("beach.jpg", size=(1200, 800)), imports)
    media.copy_into(media.video(seconds=8, size="854x480"), imports, "birthday.mp4")
    deadline = time.monotonic() + 120
    while len(services.library.all_items()) < 2:
        assert time.monotonic() < deadline, services.queue.snapshot()
        time.sleep(0.2)
    return f"https://localhost:{server.endpoint.port}/"


def open_page(browser, url, **context_args):
    context = browser.new_context(ignore_https_errors=True, **context_args)
    page = context.new_page()
    problems = []
    # Chromium logs every 4xx response; a 401 is expected (probing for a session, a wrong password).
    expected = "the server responded with a status of 401"
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" and expected not in m.text
            else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(url)
    return page, problems


def wait_js(page, expression: str, timeout: float = 30.0):
    """Poll a JS expression from Python (page.evaluate goes through the debugger, so the strict CSP,
    which forbids eval and thereby Playwright's own wait_for_function, stays on)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def sign_in(page, name, password):
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#signin-button")


def shoot(page, name):
    if os.environ.get("VAULT_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))


def test_sign_in_browse_view_play_and_sign_out(browser, gallery):
    page, problems = open_page(browser, gallery, viewport={"width": 1280, "height": 800})
    page.wait_for_selector("#signin:not([hidden])")
    shoot(page, "signin.png")
    sign_in(page, VIEWER, "Wrong!pass1")
    page.wait_for_selector("#signin-message:not([hidden])")
    assert "Wrong name or password" in page.inner_text("#signin-message")
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_selector(".tile >> nth=1")
    assert page.locator(".tile").count() == 2 and page.locator(".heading").count() >= 1
    wait_js(page, "[...document.querySelectorAll('.tile img')].every(i => i.naturalWidth > 0)")
    shoot(page, "gallery.png")

    page.click("button.tile[aria-label^='Video']")
    wait_js(page, "document.querySelector('#stage video')?.currentTime > 2", 60)
    levels = page.locator("#quality option").all_inner_texts()
    assert levels == ["Auto", "480p", "360p"]
    page.select_option("#quality", label="360p")
    wait_js(page, "document.querySelector('#quality').value === '0'")
    wait_js(page, "document.querySelector('#stage video').currentTime > 3", 30)
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")

    page.click("button.tile:not([aria-label^='Video'])")
    wait_js(page, "document.querySelector('#stage img')?.naturalWidth === 1200")
    shoot(page, "viewer.png")
    page.keyboard.press("Escape")

    page.click("#signout-button")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.locator(".tile").count() == 0
    assert problems == []


def test_playback_resumes_where_it_stopped(browser, gallery, services):
    page, problems = open_page(browser, gallery)
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    page.click("button.tile[aria-label^='Video']")
    wait_js(page, "document.querySelector('#stage video')?.currentTime > 3", 60)
    page.evaluate("document.querySelector('#stage video').pause()")
    video = next(i for i in services.library.all_items() if i.type == "video")
    user = services.users.by_name(VIEWER)
    deadline = time.monotonic() + 10
    while services.library.position(user.id, video.id) < 3:
        assert time.monotonic() < deadline, "the position was not saved"
        time.sleep(0.1)
    page.reload()
    page.click("button.tile[aria-label^='Video']")
    wait_js(page, "document.querySelector('#stage video')?.currentTime >= 3", 60)
    assert problems == []


def test_a_session_revoked_elsewhere_returns_to_sign_in_with_no_media_left(browser, gallery, make_client):
    page, _ = open_page(browser, gallery)
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_selector(".tile >> nth=1")
    owner = make_client()
    owner.login(OWNER, OWNER_PASSWORD)
    for session in owner.request("GET", "/api/admin/sessions").json["sessions"]:
        if session["username"] == VIEWER:
            owner.request("DELETE", f"/api/admin/sessions/{session['id']}")
    page.click(".filters button[data-type='image']")  # the page's next request
    page.wait_for_selector("#signin:not([hidden])")
    assert "signed out" in page.inner_text("#signin-message")
    assert page.locator(".tile, #stage img, #stage video").count() == 0


def test_phone_sized_screens_get_the_grid_without_sideways_scrolling(browser, gallery):
    page, problems = open_page(browser, gallery, viewport={"width": 375, "height": 667}, is_mobile=True,
                               has_touch=True, device_scale_factor=2)
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_selector(".tile >> nth=1")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "phone.png")
    assert problems == []


def test_the_page_runs_no_inline_script_and_loads_nothing_from_elsewhere(browser, gallery):
    page, _ = open_page(browser, gallery)
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    page.wait_for_selector(".tile >> nth=1")
    assert all(url.startswith(gallery) for url in requests)
    assert page.locator("script:not([src])").count() == 0
    assert shutil.which("chromium") or Path(CHROMIUM).exists()
