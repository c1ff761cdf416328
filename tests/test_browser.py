"""The gallery in a real headless Chromium against a real Vault (HTTPS, strict CSP, real media).

One server per module, stocked once (six dated photos and an 8 s video with 480p and 360p rungs); every
test opens its own browser context (its own cookies). Console errors, page errors, CSP violations and any
request leaving the server's origin fail the test that caused them.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    OWNER,
    OWNER_PASSWORD,
    VIEWER,
    VIEWER_PASSWORD,
    make_paths,
    start_server,
    wait_for,
)
from vaultserver.services.users import IpThrottle

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
# --ignore-certificate-errors: the browser takes Vault's certificate as a phone that installed Vault's CA does
# (README); a context's ignore_https_errors alone still refuses service workers (the share worker).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--ignore-certificate-errors"]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/156.0.0.0 Mobile Safari/537.36")


def _missing_browser() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"browser tests need {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests need Playwright for Python (pip install -e '.[dev]')"
    return None


if reason := _missing_browser():
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; in CI a missing browser is a failure", pytrace=False)
    print(f"\nSKIPPING tests/test_browser.py: {reason}")
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402

# name, size, EXIF date taken, sky top/bottom, sun, hills (front last)
PHOTOS = [
    ("sunset.jpg", (1200, 800), "2026:08:14 19:40:00", ("#2b1d5c", "#ff9a62"), "#ffd36b",
     ["#7a3d6b", "#4a2450", "#22122e"]),
    ("beach.jpg", (1200, 800), "2026:08:14 11:05:00", ("#3f8fe0", "#bfe6ff"), "#fff4c2",
     ["#3cc2c9", "#f3dca6", "#e9c98a"]),
    ("dunes.jpg", (800, 1200), "2026:08:14 09:30:00", ("#f7b267", "#fde7c7"), "#fff1d0",
     ["#e3995b", "#c8743f", "#9c5530"]),
    ("lake.jpg", (1200, 800), "2026:08:02 16:00:00", ("#5aa7d8", "#d9efff"), "#ffffff",
     ["#6d8fa8", "#3f7a5a", "#2e5d43"]),
    ("mountains.jpg", (1200, 800), "2026:08:02 08:15:00", ("#8fb8e8", "#eef5ff"), "#fffbe6",
     ["#9aa9c2", "#5d6f8f", "#36445e"]),
    ("forest.jpg", (1200, 800), "2026:06:21 12:00:00", ("#9fd3c7", "#effaf5"), "#fffbe0",
     ["#5f9e6e", "#2f6b45", "#1d4a2f"]),
]
VIDEO_NAME = "birthday.mp4"


def landscape(path: Path, size, taken, sky, sun, hills) -> Path:
    """A small synthetic photo (sky, sun, rolling hills) with an EXIF date, so the grid has real content."""
    from PIL import Image, ImageDraw

    width, height = size
    gradient = Image.linear_gradient("L").resize(size)
    picture = Image.composite(Image.new("RGB", size, sky[1]), Image.new("RGB", size, sky[0]), gradient)
    draw = ImageDraw.Draw(picture)
    radius = min(size) * 0.09
    cx, cy = width * 0.68, height * 0.32
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=sun)
    for i, color in enumerate(hills):
        base = height * (0.52 + 0.14 * i)
        points = [(x, base + math.sin(x / width * math.pi * (1.6 + i * 0.7) + i * 1.9) * height * 0.05)
                  for x in range(0, width + 25, 25)]
        draw.polygon([(0, height), *points, (width, height)], fill=color)
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = taken
    picture.save(path, "JPEG", quality=88, exif=exif)
    return path


@dataclass
class Vault:
    url: str
    services: object
    paths: object
    port: int
    items: dict

    def client(self):
        from tests.support import ApiClient
        return ApiClient(self.port, self.paths.private / "tls" / "ca.pem")

    def item(self, name: str):
        return self.items[name]


@pytest.fixture(scope="module")
def vault(tmp_path_factory, media):
    from vaultserver.services import open_services

    root = tmp_path_factory.mktemp("browser")
    paths = make_paths(root)
    services = open_services(paths)
    runtime = start_server(paths, services)
    try:
        imports = services.settings.current.import_path(services.paths)
        imports.mkdir(parents=True, exist_ok=True)
        media.copy_into(media.video(seconds=8, size="854x480"), imports, VIDEO_NAME)  # the slow one first
        for name, size, taken, sky, sun, hills in PHOTOS:
            landscape(root / name, size, taken, sky, sun, hills)
            media.copy_into(root / name, imports)
        wanted = len(PHOTOS) + 1
        # ready, not just listed: a video is listed while it converts, with no pictures yet
        wait_for(lambda: [item.status for item in services.library.all_items()] == ["ready"] * wanted,
                 timeout=240)
        items = {item.original_name: item for item in services.library.all_items()}
        port = runtime.endpoint.port
        yield Vault(f"https://localhost:{port}/", services, paths, port, items)
    finally:
        runtime.stop()
        services.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(autouse=True)
def _close_pages(browser):
    """Each test's browser contexts go away with it (before the module's server stops)."""
    yield
    for context in browser.contexts:
        context.close()


class Problems(list):
    """Console errors, uncaught exceptions and foreign requests seen by one page."""

    def __init__(self, origin: str, expected_statuses: set[int]):
        super().__init__()
        self.origin = origin
        self.expected = expected_statuses

    def console(self, message) -> None:
        if message.type != "error":
            return
        status = re.search(r"status of (\d{3})", message.text)
        url = (message.location or {}).get("url", "")
        # Chromium logs every 4xx; probing for a session (/api/auth/*) answers 401 by design.
        if status and (int(status[1]) in self.expected or (status[1] == "401" and "/api/auth/" in url)):
            return
        self.append(f"console: {message.text} ({url})")

    def request(self, request) -> None:
        if not request.url.startswith(self.origin) and not request.url.startswith(("blob:", "data:")):
            self.append(f"request to another origin: {request.url}")


def open_page(browser, vault: Vault, expected_statuses=(), **context_args) -> tuple[Page, Problems]:
    context = browser.new_context(ignore_https_errors=True, viewport=context_args.pop("viewport", DESKTOP),
                                  **context_args)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems = Problems(vault.url.rstrip("/"), set(expected_statuses))
    page.on("console", problems.console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("request", problems.request)
    page.goto(vault.url)
    return page, problems


def wait_js(page: Page, expression: str, timeout: float = 30.0):
    """Poll a JS expression from Python. (Playwright's wait_for_function needs eval, which the CSP forbids;
    page.evaluate goes through the debugger, so the page keeps its real CSP.)"""
    deadline = time.monotonic() + timeout
    while not (value := page.evaluate(expression)):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)
    return value


def sign_in(page: Page, name=VIEWER, password=VIEWER_PASSWORD) -> None:
    page.wait_for_selector("#signin-view:not([hidden])")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#signin-button")


def signed_in(page: Page, name=VIEWER, password=VIEWER_PASSWORD) -> None:
    sign_in(page, name, password)
    # All of them, the photos and the video: real tiles only (a reload shows 12 skeleton tiles first).
    page.wait_for_selector(f".tile[data-id] >> nth={len(PHOTOS)}")


def session_id(page: Page) -> str:
    return page.evaluate("fetch('/api/auth/me').then(r => r.json()).then(d => d.session_id)")


def shoot(page: Page, name: str, tmp_path: Path) -> None:
    """Always into the test's tmp dir; into docs/screenshots too when VAULT_SCREENSHOTS=1."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.mouse.move(0, 0)
    path = tmp_path / name
    page.screenshot(path=str(path))
    if os.environ.get("VAULT_SCREENSHOTS") == "1":
        from PIL import Image

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # 256 colours: a third of the size, for the repository
        Image.open(path).convert("RGB").quantize(256).save(SCREENSHOTS / name, optimize=True)


MEDIA_LEFT = """(() => {
  const html = document.documentElement.outerHTML;
  return {
    tiles: document.querySelectorAll('.tile').length,
    stage: document.querySelectorAll('#stage *').length,
    videos: document.querySelectorAll('video').length,
    mediaUrls: (html.match(/\\/api\\/media\\//g) || []).length,
    names: /birthday\\.mp4|beach\\.jpg|sunset\\.jpg/.test(document.body.innerText + html),
    viewerOpen: !document.getElementById('viewer').hidden,
  };
})()"""
THUMBS_LOADED = "[...document.querySelectorAll('.tile img.thumb')].every(i => i.complete && i.naturalWidth)"
NOTHING_LEFT = {"tiles": 0, "stage": 0, "videos": 0, "mediaUrls": 0, "names": False, "viewerOpen": False}


def tile_names(page: Page) -> list[str]:
    return page.eval_on_selector_all(".tile img.thumb", "imgs => imgs.map(i => i.alt)")


# --- tests ---------------------------------------------------------------------------------------------

def test_sign_in_then_browse_filter_sort_and_search(browser, vault, tmp_path):
    page, problems = open_page(browser, vault)
    page.wait_for_selector("#signin-view:not([hidden])")
    assert page.title() == "Sign in · Vault"
    # The CSP forbids inline script and style, so the page has none (JS sets element.style, which is allowed).
    html = page.content()
    assert "style=" not in html and "<style" not in html
    assert page.locator("script:not([src])").count() == 0
    shoot(page, "signin.png", tmp_path)

    sign_in(page, VIEWER, "Wrong!pass1")
    page.wait_for_selector("#signin-message:not([hidden])")
    assert "Wrong name or password" in page.inner_text("#signin-message")
    assert page.evaluate("document.activeElement.id") == "password"

    signed_in(page)
    names = tile_names(page)
    assert sorted(names) == sorted([VIDEO_NAME] + [p[0] for p in PHOTOS])
    assert names[0] == VIDEO_NAME  # undated: filed under when it was added (today), the newest
    assert names[1:] == [p[0] for p in PHOTOS]  # by date taken, newest first
    assert page.inner_text("#count") == "7 items"
    headings = page.eval_on_selector_all(".grid h2, .grid h3", "hs => hs.map(h => h.textContent)")
    assert "August 2026" in headings and "June 2026" in headings and "Today" in headings
    assert len(headings) == 7  # 3 months, 4 days
    video = page.locator(f".tile[data-id='{vault.item(VIDEO_NAME).id}']")
    assert " ".join(video.text_content().split()) == "Video, 0:08"
    assert page.eval_on_selector_all(".tile img.thumb", "imgs => imgs.every(i => i.loading === 'lazy')")
    wait_js(page, THUMBS_LOADED)

    # hovering a video tile plays its animated preview
    video.hover()
    wait_js(page, "document.querySelector('.tile img.preview.ready')?.src.includes('/api/media/preview/')")
    page.mouse.move(0, 0)
    shoot(page, "gallery.png", tmp_path)

    page.click(".segmented button[data-type='video']")
    wait_js(page, "document.querySelectorAll('.tile').length === 1")
    assert tile_names(page) == [VIDEO_NAME] and page.inner_text("#count") == "1 video"
    page.click(".segmented button[data-type='image']")
    wait_js(page, "document.querySelectorAll('.tile').length === 6")
    page.click(".segmented button[data-type='all']")
    wait_js(page, "document.querySelectorAll('.tile').length === 7")

    page.select_option("#sort", "taken_at:asc")
    wait_js(page, "document.querySelector('.tile img')?.alt === 'forest.jpg'")
    page.select_option("#sort", "created_at:desc")  # added: the photos after the video, in that order
    wait_js(page, "document.querySelectorAll('.tile').length === 7")
    this_month = page.evaluate("new Intl.DateTimeFormat(undefined, {month: 'long', year: 'numeric'})"
                               ".format(new Date())")
    assert page.eval_on_selector_all(".grid h2, .grid h3", "hs => hs.map(h => h.textContent)") == [
        this_month, "Today"]

    page.fill("#search", "BEA")
    wait_js(page, "document.querySelectorAll('.tile').length === 1")
    assert tile_names(page) == ["beach.jpg"]
    page.fill("#search", "no such thing")
    page.wait_for_selector("#empty:not([hidden])")
    assert "Nothing called" in page.inner_text("#empty")
    page.press("#search", "Escape")
    wait_js(page, "document.querySelectorAll('.tile').length === 7")
    assert problems == []


def test_photo_viewer_full_size_next_previous_zoom_and_back(browser, vault, tmp_path):
    page, problems = open_page(browser, vault)
    signed_in(page)
    beach = vault.item("beach.jpg")
    page.click(f".tile[data-id='{beach.id}']")
    page.wait_for_selector("#viewer:not([hidden])")
    wait_js(page, "document.querySelector('#stage img.photo')?.complete")
    assert page.evaluate("document.querySelector('#stage img.photo').naturalWidth") == beach.width == 1200
    assert page.get_attribute("#stage img.photo", "alt") == "beach.jpg"
    assert page.url.endswith(f"#/view/{beach.id}")
    assert "3 of 7" in page.inner_text("#viewer-meta")
    wait_js(page, "getComputedStyle(document.querySelector('#stage .placeholder')).opacity === '0'")  # in
    shoot(page, "viewer.png", tmp_path)

    page.keyboard.press("ArrowRight")
    wait_js(page, "document.querySelector('#viewer-title').textContent === 'dunes.jpg'")
    wait_js(page, "document.querySelector('#stage img.photo')?.naturalHeight === 1200")
    page.click("#viewer-prev")
    wait_js(page, "document.querySelector('#viewer-title').textContent === 'beach.jpg'")
    page.keyboard.press("ArrowLeft")
    wait_js(page, "document.querySelector('#viewer-title').textContent === 'sunset.jpg'")
    page.click("#viewer-next")
    wait_js(page, "document.querySelector('#viewer-title').textContent === 'beach.jpg'")

    scale = "new DOMMatrix(getComputedStyle(document.querySelector('#stage .frame')).transform).a"
    page.keyboard.press("+")
    wait_js(page, f"{scale} > 1.5")
    page.keyboard.press("0")
    wait_js(page, f"{scale} === 1")
    page.dblclick("#stage .frame", position={"x": 100, "y": 100})
    wait_js(page, f"{scale} > 2")
    # On a slow machine the double click can also count as a tap, which hides the controls; a key shows them.
    page.keyboard.press("Shift")
    wait_js(page, "!document.querySelector('#viewer').classList.contains('chrome-hidden')")
    page.click("#zoom-out")
    wait_js(page, f"{scale} < 2")

    page.keyboard.press("Escape")  # closes, back in history to the grid, focus on the photo's tile
    page.wait_for_selector("#viewer", state="hidden")
    assert page.evaluate("location.hash") in ("", "#/")
    assert page.evaluate("document.activeElement.dataset.id") == beach.id
    assert page.locator("#stage *").count() == 0
    assert problems == []


def test_video_plays_with_hls_switches_quality_and_resumes_after_reload(browser, vault):
    page, problems = open_page(browser, vault)
    workers = []
    page.on("worker", lambda worker: workers.append(worker.url))
    signed_in(page)
    video = vault.item(VIDEO_NAME)
    page.click(f".tile[data-id='{video.id}']")
    wait_js(page, "document.querySelector('#stage video')?.currentTime > 2", 60)
    assert any(url.startswith("blob:") for url in workers)  # hls.js's transmuxer worker: the CSP allows it
    # hls.js feeds the element through Media Source Extensions, even though this Chromium plays HLS itself
    assert page.evaluate("document.querySelector('#stage video').currentSrc").startswith("blob:")
    assert page.evaluate("typeof Hls === 'function' && Hls.isSupported()")
    assert page.locator("#quality option").all_inner_texts()[1:] == ["480p", "360p"]

    playing = wait_js(page, "document.querySelector('#quality').dataset.playing")
    other = "360p" if playing == "480p" else "480p"
    page.select_option("#quality", label=other)
    wait_js(page, f"document.querySelector('#quality').dataset.playing === '{other}'", 30)
    wait_js(page, f"document.querySelector('#stage video').videoHeight === {int(other[:-1])}", 30)

    page.keyboard.press("Space")  # toggles once (the native controls' own Space handling is held back)
    wait_js(page, "document.querySelector('#stage video').paused")
    page.keyboard.press("Space")
    wait_js(page, "!document.querySelector('#stage video').paused")
    page.evaluate("document.querySelector('#stage video').currentTime = 3")  # as if the scrubber were dragged
    wait_js(page, "(t => t >= 3 && t < 4.5)(document.querySelector('#stage video').currentTime)")
    page.keyboard.press("k")  # pause: saves the position
    wait_js(page, "document.querySelector('#stage video').paused")
    at = page.evaluate("document.querySelector('#stage video').currentTime")
    user = vault.services.users.by_name(VIEWER)
    wait_for(lambda: abs(vault.services.library.position(user.id, video.id) - at) < 0.2, timeout=10)
    assert 2 < at < 5, at

    page.reload()  # the URL still names the video: the viewer reopens and resumes there
    wait_js(page, f"Math.abs(document.querySelector('#stage video')?.currentTime - {at}) < 1", 60)
    assert "Resumed at 0:0" in page.inner_text("#stage .chip.resume")

    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")
    page.click("#signout-button")
    page.wait_for_selector("#signin-view:not([hidden])")
    assert "You signed out" in page.inner_text("#signin-message")
    assert page.evaluate(MEDIA_LEFT) == NOTHING_LEFT
    assert page.evaluate("fetch('/api/auth/me').then(r => r.status)") == 401  # the cookies are gone
    assert problems == []


def test_an_expired_access_token_is_refreshed_silently(browser, vault):
    import jwt

    page, problems = open_page(browser, vault, expected_statuses={401})  # the point of this test
    signed_in(page)
    def refreshed() -> int:
        return len(vault.services.audit.recent(event="refresh", limit=500))

    refreshes = refreshed()
    context = page.context
    access = next(c for c in context.cookies() if c["name"] == "vault_access")
    claims = jwt.decode(access["value"], options={"verify_signature": False})
    claims.update(iat=claims["iat"] - 1200, exp=int(time.time()) - 60)
    expired = jwt.encode(claims, vault.services.sessions._secret, algorithm="HS256")
    context.add_cookies([{**access, "value": expired}])

    page.click(".segmented button[data-type='image']")  # 401 AUTH_003, refresh, the same request again
    wait_js(page, "document.querySelectorAll('.tile').length === 6")
    assert refreshed() == refreshes + 1
    assert next(c for c in context.cookies() if c["name"] == "vault_access")["value"] != expired

    # Two minutes before expiry a page in use refreshes by itself (the clock is a timestamp, not a token).
    page.evaluate("localStorage.setItem('vault.tokenClock', "
                  "JSON.stringify({at: Date.now() - 800000, ttl: 900000}))")
    page.keyboard.press("Shift")
    wait_for(lambda: refreshed() == refreshes + 2, timeout=10)
    assert page.evaluate("JSON.parse(localStorage.getItem('vault.tokenClock')).at > Date.now() - 10000")
    assert page.evaluate("Object.keys(localStorage)") == ["vault.tokenClock"]
    assert not page.evaluate("document.cookie")  # HttpOnly: no script can read the tokens

    # hls.js: a 401 on the playlist gets one refresh and one retry, and the video plays.
    video = vault.item(VIDEO_NAME)
    failed = []

    def once_401(route):
        if not failed:
            failed.append(route.request.url)
            route.fulfill(status=401, content_type="application/json",
                          body='{"error": {"code": "AUTH_003", "message": "The access token has expired"}}')
        else:
            route.continue_()

    page.route(f"**/api/media/stream/{video.id}", once_401)
    page.click(".segmented button[data-type='all']")
    page.click(f".tile[data-id='{video.id}']")
    wait_js(page, "document.querySelector('#stage video')?.currentTime > 0.5", 60)
    assert failed and refreshed() == refreshes + 3
    assert problems == []


def test_a_session_ended_elsewhere_returns_to_sign_in_leaving_no_media(browser, vault):
    # 1. Signed out from another of the user's devices while a video plays: the page hears it at once.
    page, problems = open_page(browser, vault, expected_statuses={401})
    signed_in(page)
    page.click(f".tile[data-id='{vault.item(VIDEO_NAME).id}']")
    wait_js(page, "document.querySelector('#stage video')?.currentTime > 0.5", 60)
    other = vault.client()
    assert other.login(VIEWER, VIEWER_PASSWORD, device="Safari on iPhone").status == 200
    assert other.request("DELETE", f"/api/sessions/{session_id(page)}").status == 200
    page.wait_for_selector("#signin-view:not([hidden])", timeout=15_000)
    assert "You were signed out" in page.inner_text("#signin-message")
    assert page.evaluate(MEDIA_LEFT) == NOTHING_LEFT

    # 2. Ended by the owner: the page goes back to sign-in by itself, without a request of its own.
    signed_in(page)
    page.click(f".tile[data-id='{vault.item('beach.jpg').id}']")
    wait_js(page, "document.querySelector('#stage img.photo')?.complete")
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")
    owner = vault.client()
    owner.login(OWNER, OWNER_PASSWORD)
    assert owner.request("DELETE", f"/api/admin/sessions/{session_id(page)}").status == 200
    page.wait_for_selector("#signin-view:not([hidden])", timeout=5_000)
    assert "You were signed out" in page.inner_text("#signin-message")
    assert page.evaluate(MEDIA_LEFT) == NOTHING_LEFT
    assert page.evaluate("location.hash") == ""

    # 3. Idle for longer than the idle timeout: the message says so.
    signed_in(page)
    sessions = vault.services.sessions
    real_clock = sessions.clock
    from datetime import timedelta
    sessions.clock = lambda: real_clock() + timedelta(minutes=31)
    try:
        page.click(".segmented button[data-type='image']")
        page.wait_for_selector("#signin-view:not([hidden])")
    finally:
        sessions.clock = real_clock
    assert "inactivity" in page.inner_text("#signin-message")
    assert page.evaluate(MEDIA_LEFT) == NOTHING_LEFT
    assert problems == []


def test_sign_in_explains_lockouts_and_networks_it_refuses(browser, vault):
    vault.services.users.create("guest", "Gue5t!pass", "member")
    # The per-address limit, freshly counted (a locked account answers 401 like a wrong password).
    client, users = vault.client(), vault.services.users
    shared_throttle, users.throttle = users.throttle, IpThrottle(limit=5)
    try:
        for _ in range(5):
            assert client.login("guest", "Wrong!pass1").status == 401
        page, problems = open_page(browser, vault, expected_statuses={403, 429})
        sign_in(page, "guest", "Gue5t!pass")
        page.wait_for_selector("#signin-message:not([hidden])")
        first = page.inner_text("#signin-message")
        assert re.search(r"Too many attempts.*try again in 1[45]:\d\d", first), first
        # It counts down.
        wait_js(page, f"document.querySelector('#signin-message').textContent !== {first!r}", 5)
    finally:
        users.throttle = shared_throttle

    vault.services.settings.update(trusted_proxies=["127.0.0.1/32"])
    try:
        def from_outside(route):
            route.continue_(headers={**route.request.headers, "x-forwarded-for": "203.0.113.9"})

        page.route("**/api/**", from_outside)
        sign_in(page, VIEWER, VIEWER_PASSWORD)
        wait_js(page, "document.querySelector('#signin-message').textContent.includes('home network')")
        page.unroute("**/api/**")
        signed_in(page)
        page.route("**/api/**", from_outside)  # the network changes while the gallery is open
        page.click(".segmented button[data-type='video']")
        wait_js(page, "!document.querySelector('#signin-view').hidden")
        assert "home network" in page.inner_text("#signin-message")
        assert page.evaluate(MEDIA_LEFT) == NOTHING_LEFT
    finally:
        vault.services.settings.update(trusted_proxies=[])
    assert problems == []


def test_my_devices_lists_sessions_and_signs_others_out(browser, vault):
    page, problems = open_page(browser, vault)
    signed_in(page)
    phone = vault.client()
    phone.login(VIEWER, VIEWER_PASSWORD, device="Safari on iPad")
    page.click("#devices-link")
    page.wait_for_selector("#devices-view:not([hidden]) .device")
    assert page.inner_text("#devices-user") == VIEWER
    mine = page.locator(".device", has=page.locator(".tag"))
    assert "Chrome on Linux" in mine.inner_text() and "127.0.0.1" in mine.inner_text()
    page.get_by_role("button", name="Sign out Safari on iPad").click()
    wait_js(page, "![...document.querySelectorAll('.device-name')].some(n => n.textContent.includes('iPad'))")
    assert phone.request("GET", "/api/auth/me").status == 401

    phone.login(VIEWER, VIEWER_PASSWORD, device="Firefox on Windows")
    page.reload()
    page.wait_for_selector("#devices-view:not([hidden]) .device")
    page.click("#devices-others")
    wait_js(page, "document.querySelectorAll('.device').length === 1")
    assert phone.request("GET", "/api/auth/me").status == 401
    assert page.get_by_role("button", name="Sign out all other devices").is_disabled()
    page.click(".devices-head a")
    page.wait_for_selector("#gallery-view:not([hidden]) .tile")
    assert problems == []


def test_a_phone_gets_the_grid_without_sideways_scrolling_and_swipes_photos(browser, vault, tmp_path):
    page, problems = open_page(browser, vault, viewport={"width": 375, "height": 667}, is_mobile=True,
                               has_touch=True, user_agent=PHONE_UA, reduced_motion="reduce")
    no_sideways = "document.documentElement.scrollWidth <= window.innerWidth"
    page.wait_for_selector("#signin-view:not([hidden])")
    assert page.evaluate(no_sideways)
    signed_in(page)
    wait_js(page, THUMBS_LOADED)
    assert page.evaluate(no_sideways)
    columns = page.evaluate("getComputedStyle(document.querySelector('.grid')).gridTemplateColumns")
    assert columns.count("px") == 3, columns
    # Video thumbnails are animated: with reduced motion the tile shows the still poster instead.
    video = vault.item(VIDEO_NAME)
    still = page.get_attribute(f".tile[data-id='{video.id}'] img.thumb", "src")
    assert still == f"/api/media/poster/{video.id}"
    shoot(page, "phone.png", tmp_path)
    sessions = vault.client()
    sessions.login(VIEWER, VIEWER_PASSWORD)
    listed = sessions.request("GET", "/api/sessions").json()["sessions"]
    names = {s["id"]: (s["device_name"], s["device_type"]) for s in listed}
    assert names[session_id(page)] == ("Chrome on Android", "phone")

    cdp = page.context.new_cdp_session(page)
    box = page.locator(f".tile[data-id='{video.id}']").bounding_box()
    centre = {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [centre]})
    wait_js(page, "document.querySelector('.tile img.preview')?.src.includes('/api/media/poster/')", 5)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})  # press and hold: a preview
    wait_js(page, "!document.querySelector('.tile img.preview')", 5)
    time.sleep(0.3)
    assert page.locator("#viewer").is_hidden()  # ...and letting go does not open the video

    page.tap(f".tile[data-id='{vault.item('beach.jpg').id}']")
    wait_js(page, "document.querySelector('#stage .frame.ready')")
    assert page.evaluate(no_sideways)

    def swipe(x0, x1, y=330):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y}]})
        for step in range(1, 6):
            x = x0 + (x1 - x0) * step / 5
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
            time.sleep(0.03)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    swipe(300, 80)  # to the left: the next photo
    wait_js(page, "document.querySelector('#viewer-title').textContent === 'dunes.jpg'")
    swipe(80, 300)
    wait_js(page, "document.querySelector('#viewer-title').textContent === 'beach.jpg'")
    time.sleep(0.5)  # Chromium turns a tap during a swipe's fling into "stop the fling", with no click
    page.tap("#viewer-close")
    page.wait_for_selector("#viewer", state="hidden")
    page.click("#devices-link")
    page.wait_for_selector("#devices-view:not([hidden]) .device")
    assert page.evaluate(no_sideways)
    assert problems == []
