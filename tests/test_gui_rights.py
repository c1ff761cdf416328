"""The Users tab's "Role and Expiry…" dialog shows and changes whether an account may download and upload,
through the real services (pytest-qt, offscreen)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")

from gui.tabs.users import AccessDialog  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402


def test_the_access_dialog_shows_an_accounts_rights_and_the_tab_turns_downloads_off(qtbot, controller, window,
                                                                                      services):
    nephew = services.users.create("nephew", PASSWORD, "member")
    dialog = AccessDialog(None, nephew)
    qtbot.addWidget(dialog)
    assert dialog.can_download.isChecked() and dialog.can_upload.isChecked()
    assert dialog.can_download.accessibleName() == "May download photos and videos to keep"
    page = window.show_tab("Users")
    page.set_access(nephew, "member", None, can_download=False, can_upload=True)
    qtbot.waitUntil(lambda: not services.users.by_name("nephew").can_download, timeout=30_000)
    said = "nephew is now a member; downloads turned off."
    qtbot.waitUntil(lambda: page.notice.text() == said, timeout=30_000)
    changed = services.users.by_name("nephew")
    assert changed.can_upload
    again = AccessDialog(None, changed)
    qtbot.addWidget(again)
    assert not again.can_download.isChecked() and again.can_upload.isChecked()
