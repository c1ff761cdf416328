"""Adding photos and videos from a real headless Chromium to a real Vault over HTTPS (tus at /api/uploads).

A member picks a photo and a video with the Upload button's picker on a phone-sized page: each gets a
progress bar named after it that moves (the connection is throttled, so the bar is seen part-way), then the
panel says "Added" and both tiles appear through the live events; the same photo again is "Already in your
library". A large photo cut off by a reload is listed as unfinished, and choosing it again continues from
the offset Vault holds instead of starting over. Photos shared from Android's Share sheet (the manifest's
share_target, caught by the share worker) are sent the same way. A guest has no Upload button, and what is
shared to a guest's Vault is dropped with a message. axe-core checks the panel.

The browser and page helpers come from tests/test_browser.py, the axe check from tests/test_browser_a11y.py.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from sqlmodel import select

from tests.conftest import VIEWER, VIEWER_PASSWORD, make_paths, start_server
from tests.test_browser import (  # noqa: F401
    PHOTOS,
    Vault,
    _close_pages,
    browser,
    landscape,
    open_page,
    shoot,
    sign_in,
    wait_js,
)
from tests.test_browser_a11y import PHONE, assert_accessible
from vaultserver.db.models import MediaFile

pytestmark = pytest.mark.slow
GUEST, GUEST_PASSWORD = "Grandpa", "Gr4ndpa!pass"
CHUNK = 8 * 1024 * 1024  # the page's chunk size (assets/js/uploads.js)


@pytest.fixture(scope="module")
def vault(tmp_path_factory):
    from vaultserver.services import open_services

    root = tmp_path_factory.mktemp("uploads")
    paths = make_paths(root)
    services = open_services(paths)
    runtime = start_server(paths, services)
    try:
        services.users.create(GUEST, GUEST_PASSWORD, "guest")
        port = runtime.endpoint.port
        yield Vault(f"https://localhost:{port}/", services, paths, port, {})
    finally:
        runtime.stop()
        services.close()


def signed_in_page(browser, vault: Vault, name=VIEWER, password=VIEWER_PASSWORD, **context_args):  # noqa: F811
    page, problems = open_page(browser, vault, **context_args)
    sign_in(page, name, password)
    page.wait_for_selector("#app-view:not([hidden])")
    return page, problems


def throttle_uploads(page, bytes_per_second: int) -> None:
    """Slow this page's uploads down (Chromium's own network emulation), so progress can be watched."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": bytes_per_second})


def status_of(page, name: str) -> str:
    row = page.locator(".upload-row", has=page.get_by_text(name, exact=True))
    return row.locator(".upload-status").inner_text()


def wait_status(page, name: str, text: str, timeout: float = 120.0) -> None:
    wait_js(page, f"""[...document.querySelectorAll('.upload-row[data-state]')].some((row) =>
        row.querySelector('.upload-name').textContent === {name!r}
        && row.querySelector('.upload-status').textContent.startsWith({text!r}))""", timeout)


TILES = "[...document.querySelectorAll('.tile[data-id] img.thumb')].map((i) => i.alt)"


def tile_names(page) -> list[str]:
    return page.evaluate(TILES)


def test_a_member_uploads_a_photo_and_a_video_from_a_phone_and_both_tiles_appear(browser, vault, media,  # noqa: F811
                                                                                  tmp_path):
    name, size, taken, sky, sun, hills = PHOTOS[1]
    photo = landscape(tmp_path / "harbour.jpg", size, taken, sky, sun, hills)
    video = shutil.copyfile(media.video(seconds=4, size="640x360"), tmp_path / "picnic.mp4")
    page, problems = signed_in_page(browser, vault, **PHONE)
    assert page.get_by_role("button", name="Upload").is_visible()
    throttle_uploads(page, 96_000)

    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Upload").click()
    assert chooser.value.is_multiple()
    assert page.get_attribute("#upload-input", "accept") == "image/*,video/*"
    chooser.value.set_files([str(photo), str(video)])

    bar = page.get_by_role("progressbar", name="Upload of picnic.mp4")
    moving = "(() => { const bar = document.querySelector('progress[aria-label=\"Upload of picnic.mp4\"]');" \
             " return bar && bar.value > 0 && bar.value < 100; })()"
    wait_js(page, moving)
    assert bar.is_visible()
    assert " of " in status_of(page, "picnic.mp4")  # "310 KB of 620 KB (50%)"
    assert_accessible(page, "uploads panel while sending")
    shoot(page, "upload-phone.png", tmp_path)

    wait_status(page, "harbour.jpg", "Added")
    wait_status(page, "picnic.mp4", "Added")
    wait_js(page, "[...document.querySelectorAll('.tile[data-id] img.thumb')].length === 2", 60)
    assert sorted(tile_names(page)) == ["harbour.jpg", "picnic.mp4"]
    assert page.inner_text("#upload-summary") == "2 added"
    assert_accessible(page, "uploads panel when done")

    # The same photo again: Vault recognises it, and the panel says so.
    page.set_input_files("#upload-input", [str(photo)])
    wait_status(page, "harbour.jpg", "Already in your library")
    assert sorted(tile_names(page)) == ["harbour.jpg", "picnic.mp4"]
    page.get_by_role("button", name="Close uploads").click()
    assert page.locator("#upload-panel").is_hidden()
    assert problems == []


def test_many_files_go_three_at_a_time_and_the_rest_wait_their_turn(browser, vault, tmp_path):  # noqa: F811
    photos = []
    for index, (name, size, _taken, sky, sun, hills) in enumerate(PHOTOS[:5]):
        taken = f"2025:03:0{index + 1} 10:00:00"  # not the other tests' photos: those would be duplicates
        photos.append(landscape(tmp_path / f"queue-{index}-{name}", size, taken, sky, sun, hills))
    page, problems = signed_in_page(browser, vault)
    throttle_uploads(page, 150_000)
    page.set_input_files("#upload-input", [str(photo) for photo in photos])

    wait_js(page, "document.querySelectorAll('.upload-row[data-state=\"uploading\"]').length === 3")
    assert page.locator(".upload-row[data-state='waiting']").count() == 2
    assert page.inner_text("#upload-summary") == "Sending 3 files, 2 more waiting…"
    waiting = page.locator(".upload-row[data-state='waiting']").first
    assert waiting.locator(".upload-status").inner_text() == "Waiting…"
    for photo in photos:
        wait_status(page, photo.name, "Added")
    assert page.inner_text("#upload-summary") == "5 added"
    assert problems == []


def noisy_photo(path, width=3000, height=2200):
    """A photo that compresses badly (random pixels): several of the page's chunks in one real JPEG."""
    from PIL import Image

    noise = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    noise.save(path, "JPEG", quality=100, subsampling=0)
    assert path.stat().st_size > 1.5 * CHUNK
    return path


def test_an_upload_cut_off_by_a_reload_continues_from_where_vault_stopped(browser, vault, tmp_path):  # noqa: F811
    photo = noisy_photo(tmp_path / "meadow.jpg")
    page, problems = signed_in_page(browser, vault)
    throttle_uploads(page, 3_000_000)
    page.set_input_files("#upload-input", [str(photo)])

    # Wait until Vault holds at least one whole chunk, then reload in the middle of the next one.
    url = wait_js(page, """Object.keys(localStorage).filter((key) => key.startsWith('tus::'))
        .map((key) => JSON.parse(localStorage.getItem(key)).uploadUrl)[0]""")
    held = "(url) => fetch(url, {method: 'HEAD', headers: {'Tus-Resumable': '1.0.0'}})" \
           ".then((r) => Number(r.headers.get('Upload-Offset')))"
    wait_js(page, f"({held})({url!r}).then((offset) => offset >= {CHUNK})")
    page.reload()
    page.wait_for_selector("#app-view:not([hidden])")
    unfinished = page.locator(".upload-unfinished", has=page.get_by_text("meadow.jpg", exact=True))
    unfinished.wait_for()
    assert "Choose the same file to continue" in unfinished.inner_text()
    assert_accessible(page, "an unfinished upload after a reload")
    before = page.evaluate(f"({held})({url!r})")
    assert CHUNK <= before < photo.stat().st_size

    offsets = []  # where each PATCH after the reload starts
    page.on("request", lambda request: request.method == "PATCH"
            and offsets.append(int(request.headers.get("upload-offset", -1))))
    with page.expect_file_chooser() as chooser:
        unfinished.get_by_role("button", name="Choose it again").click()
    chooser.value.set_files(str(photo))
    wait_status(page, "meadow.jpg", "Added")
    assert offsets and offsets[0] >= before  # continued (from what Vault held by then), not started over
    assert page.locator(".upload-unfinished").count() == 0
    wait_js(page, f"({TILES}).includes('meadow.jpg')", 60)
    assert not page.evaluate("Object.keys(localStorage).some((key) => key.startsWith('tus::'))")
    assert problems == []


def test_a_guest_has_no_upload_button(browser, vault):  # noqa: F811
    page, problems = signed_in_page(browser, vault, GUEST, GUEST_PASSWORD, **PHONE)
    assert page.locator("#upload-button").is_hidden()
    assert page.locator("#upload-panel").is_hidden()
    assert problems == []


INBOX = "caches.open('vault-shared').then((box) => box.keys()).then((keys) => keys.length)"
SHARE_WORKER_READY = "navigator.serviceWorker.getRegistration('/share').then((r) => Boolean(r && r.active))"


def share_sheet(page, vault: Vault, files) -> None:  # noqa: F811
    """What Android does when Vault is picked in the Share sheet: a form POST to the manifest's share_target
    (its action, method, enctype and file field), as a navigation of Vault's own window."""
    target = json.loads(page.context.request.get(f"{vault.url}manifest.webmanifest").text())["share_target"]
    page.evaluate("""(target) => {
        const form = Object.assign(document.createElement('form'),
            { method: target.method, enctype: target.enctype, action: target.action });
        const input = Object.assign(document.createElement('input'),
            { type: 'file', name: target.params.files[0].name, multiple: true, id: 'share-sheet' });
        form.append(input);
        document.body.append(form);
    }""", target)
    page.set_input_files("#share-sheet", [str(path) for path in files])
    with page.expect_navigation():
        page.evaluate("document.getElementById('share-sheet').form.submit()")


def test_photos_shared_from_the_share_sheet_are_uploaded_and_leave_the_inbox(browser, vault, media,  # noqa: F811
                                                                              tmp_path):
    name, size, taken, sky, sun, hills = PHOTOS[3]
    photo = landscape(tmp_path / "shared-lake.jpg", size, taken, sky, sun, hills)
    video = shutil.copyfile(media.video(seconds=2, size="320x240"), tmp_path / "shared-clip.mp4")
    page, problems = signed_in_page(browser, vault, **PHONE)
    wait_js(page, SHARE_WORKER_READY)
    posted = []
    page.on("request", lambda request: request.method == "POST" and "/share" in request.url
            and posted.append(request.url))

    share_sheet(page, vault, [photo, video])
    page.wait_for_selector("#app-view:not([hidden])")
    wait_status(page, "shared-lake.jpg", "Added")
    wait_status(page, "shared-clip.mp4", "Added")
    wait_js(page, f"({TILES}).includes('shared-lake.jpg') && ({TILES}).includes('shared-clip.mp4')", 60)
    assert page.url == vault.url  # ?shared=2 is taken out of the address bar
    wait_js(page, f"{INBOX}.then((count) => count === 0)")  # sent: nothing of it stays on the phone
    with vault.services.db.session() as session:
        uploaders = {row.original_name: row.uploaded_by for row in session.exec(select(MediaFile))}
    member = vault.services.users.by_name(VIEWER).id
    assert uploaders["shared-lake.jpg"] == uploaders["shared-clip.mp4"] == member
    assert posted  # the form was posted (and taken by the worker: Vault would have answered ?shared=lost)
    assert problems == []


def test_what_is_shared_to_a_guests_vault_is_dropped_with_a_message(browser, vault, tmp_path):  # noqa: F811
    name, size, taken, sky, sun, hills = PHOTOS[4]
    photo = landscape(tmp_path / "not-for-guests.jpg", size, taken, sky, sun, hills)
    page, problems = signed_in_page(browser, vault, GUEST, GUEST_PASSWORD, **PHONE)
    wait_js(page, SHARE_WORKER_READY)
    share_sheet(page, vault, [photo])
    page.wait_for_selector("#app-view:not([hidden])")
    toast = page.locator("#toast")
    toast.wait_for()
    assert "can't add photos or videos" in toast.inner_text()
    wait_js(page, f"{INBOX}.then((count) => count === 0)")
    assert page.locator("#upload-panel").is_hidden()
    assert "not-for-guests.jpg" not in tile_names(page)
    assert problems == []
