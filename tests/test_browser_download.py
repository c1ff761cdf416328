"""The viewer's Download button in real Chromium: labelled, saves the item under its original name, and is
not there for an account whose downloads an administrator turned off.

The server, browser and page helpers come from tests/test_browser.py.
"""

from __future__ import annotations

import pytest

from tests.conftest import VIEWER
from tests.test_browser import (  # noqa: F401
    _close_pages,
    browser,
    open_page,
    signed_in,
    vault,
    wait_js,
)

pytestmark = pytest.mark.slow


def test_the_viewer_downloads_a_photo_and_hides_the_button_when_downloads_are_off(browser, vault):  # noqa: F811
    beach = vault.item("beach.jpg")
    page, problems = open_page(browser, vault)
    signed_in(page)
    page.click(f".tile[data-id='{beach.id}']")
    page.wait_for_selector("#viewer-download:not([hidden])")
    assert page.get_attribute("#viewer-download", "aria-label") == "Download"
    with page.expect_download() as download:
        page.click("#viewer-download")
    assert download.value.suggested_filename == "beach.webp"
    assert open(download.value.path(), "rb").read(4) == b"RIFF"
    assert problems == []

    viewer = vault.services.users.by_name(VIEWER)
    vault.services.users.update(viewer.id, can_download=False)
    try:
        page.reload()
        page.wait_for_selector("#viewer:not([hidden])")
        wait_js(page, "document.querySelector('#viewer-title').textContent === 'beach.jpg'")
        assert page.locator("#viewer-download").is_hidden()
    finally:
        vault.services.users.update(viewer.id, can_download=True)
