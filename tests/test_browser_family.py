"""The family library in a real headless Chromium against a real Vault: a member favorites a photo, makes
an album, fills it from a selection and shares it with a guest, whose page then shows exactly that album and
its items, with nothing to manage; pages update themselves (a photo dropped into the import folder appears
in an open page within seconds of its commit, a deleted one leaves, a shared album's new item reaches the
guest) and a page whose session is revoked goes to sign-in at once. axe-core checks the albums view and the
dialogs on the way.

The browser and page helpers come from tests/test_browser.py, the axe check from tests/test_browser_a11y.py.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import VIEWER, VIEWER_PASSWORD, make_paths, start_server, wait_for
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

pytestmark = pytest.mark.slow
GUEST, GUEST_PASSWORD = "Grandma", "Gr4ndma!pass"
NEW_PASSWORD = "N3w!family-pass"
STOCK = PHOTOS[:4]  # sunset, beach, dunes, lake
NEW_PHOTO = PHOTOS[4]  # mountains: dropped in while the pages are open
TILES = "[...document.querySelectorAll('.tile[data-id] img.thumb')].map(i => i.alt)"


@pytest.fixture(scope="module")
def family(tmp_path_factory, media):
    from vaultserver.services import open_services

    root = tmp_path_factory.mktemp("family")
    paths = make_paths(root)
    services = open_services(paths)
    runtime = start_server(paths, services)
    try:
        services.users.create(GUEST, GUEST_PASSWORD, "guest")
        imports = services.settings.current.import_path(services.paths)
        imports.mkdir(parents=True, exist_ok=True)
        for name, size, taken, sky, sun, hills in STOCK:
            media.copy_into(landscape(root / name, size, taken, sky, sun, hills), imports)
        wait_for(lambda: len(services.library.all_items()) == len(STOCK), timeout=120)
        items = {item.original_name: item for item in services.library.all_items()}
        port = runtime.endpoint.port
        yield Vault(f"https://localhost:{port}/", services, paths, port, items), root, imports
    finally:
        runtime.stop()
        services.close()


def signed_in_as(page, name: str, password: str, tiles: int) -> None:
    sign_in(page, name, password)
    page.wait_for_selector("#app-view:not([hidden])")
    if tiles:
        page.wait_for_selector(f".tile[data-id] >> nth={tiles - 1}")


def test_a_member_shares_an_album_with_a_guest_and_open_pages_follow_the_library(browser, family, media,  # noqa: F811
                                                                                  tmp_path):
    vault, root, imports = family
    sunset, beach, lake = (vault.item(name) for name in ("sunset.jpg", "beach.jpg", "lake.jpg"))
    member, member_problems = open_page(browser, vault, expected_statuses={400})  # a weak new password
    signed_in_as(member, VIEWER, VIEWER_PASSWORD, len(STOCK))

    # A heart on a tile: the photo is in this member's favorites, and only there.
    heart = member.locator(f".cell[data-id='{beach.id}'] .heart")
    heart.hover()
    heart.click()
    wait_js(member, f"document.querySelector(\".cell[data-id='{beach.id}'] .heart\").ariaPressed === 'true'")
    member.click("#nav-favorites")
    wait_js(member, f"JSON.stringify({TILES}) === '[\"beach.jpg\"]'")
    assert member.inner_text("#gallery-title") == "Favorites"
    assert member.evaluate(f"fetch('/api/media/{beach.id}').then(r => r.json())")["favorite"] is True

    # A new album, filled from a selection of two tiles in the library.
    member.click("#nav-albums")
    member.wait_for_selector("#albums-view:not([hidden]) #albums-empty:not([hidden])")
    member.click("#album-new")
    dialog = member.locator("dialog.dialog[open]")
    assert dialog.get_by_role("textbox", name="Album name").evaluate("e => e === document.activeElement")
    assert_accessible(member, "new album dialog")
    dialog.get_by_role("textbox", name="Album name").fill("Holiday")
    dialog.get_by_role("button", name="Create album").click()
    member.wait_for_selector("#gallery-view:not([hidden]) #empty:not([hidden])")
    assert member.inner_text("#gallery-title") == "Holiday"
    member.click("#nav-all")
    member.wait_for_selector(f".tile[data-id] >> nth={len(STOCK) - 1}")
    member.click("#select-button")
    member.click(f".tile[data-id='{sunset.id}']")
    member.focus(f".tile[data-id='{beach.id}']")
    member.keyboard.press("Space")  # a tile is a checkbox while selecting
    assert member.inner_text("#selection-count") == "2 selected"
    assert member.locator(".tile[aria-checked='true']").count() == 2
    member.click("#selection-add")
    dialog.wait_for()
    assert_accessible(member, "add to album dialog")
    assert dialog.get_by_role("radio", name="Holiday").is_checked()
    dialog.get_by_role("button", name="Add", exact=True).click()
    member.wait_for_selector("dialog.dialog", state="detached")
    assert "Added 2 items to “Holiday”" in member.inner_text("#toast")
    assert member.locator("#selection-bar").is_hidden()
    album = vault.client()
    album.login(VIEWER, VIEWER_PASSWORD)
    (holiday,) = album.request("GET", "/api/albums").json()["albums"]
    assert holiday["name"] == "Holiday" and holiday["item_count"] == 2

    # Shared with the guest from the album's own page.
    member.click("#nav-albums")
    member.click(f".album-card[data-id='{holiday['id']}'] a")
    wait_js(member, f"JSON.stringify({TILES}.sort()) === '[\"beach.jpg\",\"sunset.jpg\"]'")
    assert_accessible(member, "an album's grid")
    member.click("#album-share")
    dialog.wait_for()
    assert_accessible(member, "share dialog")
    shoot(member, "album-share.png", tmp_path)
    dialog.get_by_role("checkbox", name=GUEST).check()
    wait_js(member, "document.querySelector('dialog .dialog-status').textContent.includes('Shared with')")
    dialog.get_by_role("button", name="Done").click()
    member.wait_for_selector("dialog.dialog", state="detached")
    assert member.evaluate("document.activeElement.id") == "album-share"  # focus back on what opened it

    # The guest's page (a phone): exactly that album and its two photos, and nothing to manage.
    guest, guest_problems = open_page(browser, vault, **PHONE)
    signed_in_as(guest, GUEST, GUEST_PASSWORD, 2)
    assert sorted(guest.evaluate(TILES)) == ["beach.jpg", "sunset.jpg"]
    for control in ("#select-button", ".manage", "#album-tools"):
        assert all(not node.is_visible() for node in guest.locator(control).all()), control
    guest.click("#nav-albums")
    guest.wait_for_selector("#albums-view:not([hidden]) .album-card")
    assert guest.locator(".album-card .album-name").all_inner_texts() == ["Holiday"]
    assert guest.locator("#album-new").is_hidden()
    assert_accessible(guest, "albums view, guest on a phone")
    shoot(guest, "guest-phone.png", tmp_path)
    guest.click(".album-card a")
    wait_js(guest, f"JSON.stringify({TILES}.sort()) === '[\"beach.jpg\",\"sunset.jpg\"]'")
    assert guest.locator("#album-tools").is_hidden()
    guest.click(f".tile[data-id='{beach.id}']")
    guest.wait_for_selector("#stage .frame.ready")
    assert guest.locator("#viewer-add").is_hidden()
    assert guest.get_by_role("button", name="Favorite").get_attribute("aria-pressed") == "false"  # per person
    guest.keyboard.press("Escape")
    guest.wait_for_selector("#viewer", state="hidden")

    # A photo dropped into the import folder appears in the member's open page by itself; not the guest's.
    member.click("#nav-all")
    member.wait_for_selector(f".tile[data-id] >> nth={len(STOCK) - 1}")
    name, size, taken, sky, sun, hills = NEW_PHOTO
    media.copy_into(landscape(root / name, size, taken, sky, sun, hills), imports)
    committed = wait_for(lambda: next((i for i in vault.services.library.all_items()
                                       if i.original_name == name), None), timeout=120)
    at = time.monotonic()
    wait_js(member, f"document.querySelector(\".tile[data-id='{committed.id}'] img.thumb\")?.complete", 5)
    assert time.monotonic() - at < 5
    assert member.inner_text("#count") == f"{len(STOCK) + 1} items"
    # ...and once it is put in the shared album, in the guest's album page too.
    assert album.request("POST", f"/api/albums/{holiday['id']}/items",
                         {"media_ids": [committed.id]}).status == 200
    wait_js(guest, f"document.querySelector(\".tile[data-id='{committed.id}'] img.thumb\")?.complete", 5)

    # Deleted: its tile leaves both pages.
    vault.services.library.delete(committed.id)
    wait_js(member, f"!document.querySelector(\".tile[data-id='{committed.id}']\")", 5)
    wait_js(guest, f"!document.querySelector(\".tile[data-id='{committed.id}']\")", 5)
    assert member.inner_text("#count") == f"{len(STOCK)} items"
    assert lake.id in member.evaluate("[...document.querySelectorAll('.tile')].map(t => t.dataset.id)")

    # The member changes their password under My devices: a weak one lists the unmet rules, a wrong current
    # one is refused without signing this page out, and the change signs out every other device.
    member.click("#devices-link")
    member.wait_for_selector("#devices-view:not([hidden]) .device")
    member.fill("#current-password", VIEWER_PASSWORD)
    member.fill("#new-password", "short")
    member.click("#password-submit")
    member.wait_for_selector("#new-password-rules li")
    assert member.evaluate("document.activeElement.id") == "new-password"
    assert_accessible(member, "my devices, a refused new password")
    member.fill("#current-password", "Not!thepass1")
    member.fill("#new-password", NEW_PASSWORD)
    member.click("#password-submit")
    wait_js(member, "document.querySelector('#password-text').textContent.includes('current password')")
    assert member.evaluate("document.activeElement.id") == "current-password"
    member.fill("#current-password", VIEWER_PASSWORD)
    member.click("#password-submit")
    wait_js(member, "document.querySelector('#toast').textContent.startsWith('Password changed')")
    assert album.request("GET", "/api/auth/me").status == 401  # the other device
    assert member.locator("#app-view").is_visible() and not member.input_value("#new-password")

    # The guest's session is revoked: the page goes to sign-in at once, with no request of its own.
    session = guest.evaluate("fetch('/api/auth/me').then(r => r.json()).then(d => d.session_id)")
    vault.services.sessions.revoke(session, "signed_out_by_admin")
    guest.wait_for_selector("#signin-view:not([hidden])", timeout=5_000)
    assert guest.locator(".tile").count() == 0 and "signed out" in guest.inner_text("#signin-message")
    assert member_problems == [] and guest_problems == []
