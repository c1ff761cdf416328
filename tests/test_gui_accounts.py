"""The Users tab for a family: roles (admin, member, guest) and expiry dates, chosen, shown and changed
through the real services (pytest-qt, offscreen)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")

from PySide6.QtCore import QDate  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from gui.tabs.users import AccessDialog, AccessFields, UserDialog  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402
from tests.test_accounts import expire_now  # noqa: E402


def in_days(days: int) -> date:
    return date.today() + timedelta(days=days)


def qdate(day: date) -> QDate:
    return QDate(day.year, day.month, day.day)


def row_of(page, username: str) -> list[str]:
    for r in range(page.table.rowCount()):
        if page.table.item(r, 0).text() == username:
            return [page.table.item(r, c).text() for c in range(page.table.columnCount())]
    return []


def test_new_accounts_are_members_that_never_expire_unless_told(qtbot):
    dialog = UserDialog(None)
    qtbot.addWidget(dialog)
    access = dialog.access
    assert access.chosen_role() == "member" and access.expires_on() is None
    assert access.expires.text() == "Never"
    access.role.setCurrentIndex(access.role.findData("guest"))
    access.expires.setDate(qdate(in_days(6)))
    assert access.chosen_role() == "guest" and access.expires_on() == in_days(6)


def test_choosing_admin_clears_and_locks_the_expiry(qtbot):
    access = AccessFields()
    holder = QWidget()  # owns the fields for the test's lifetime
    holder.setLayout(access)
    qtbot.addWidget(holder)
    access.show_account("guest", in_days(3))
    assert access.expires_on() == in_days(3) and access.expires.isEnabled()
    access.role.setCurrentIndex(access.role.findData("admin"))
    assert access.expires_on() is None and not access.expires.isEnabled()


def test_the_users_tab_adds_a_guest_with_an_expiry_and_changes_role_and_date(qtbot, controller, window,
                                                                             services):
    page = window.show_tab("Users")
    qtbot.waitUntil(lambda: page.table.rowCount() == 2)
    assert [page.table.horizontalHeaderItem(c).text() for c in range(page.table.columnCount())] == [
        "Name", "Role", "Status", "Expires", "Last sign-in", "Created"]
    page.create_user("sitter", PASSWORD, "guest", in_days(4))
    shown = ["sitter", "guest", "active", in_days(4).isoformat()]
    qtbot.waitUntil(lambda: row_of(page, "sitter")[:4] == shown, timeout=30_000)
    sitter = services.users.by_name("sitter")
    assert sitter.role == "guest" and sitter.expires_on == in_days(4)

    page.set_access(sitter, "member", None)
    qtbot.waitUntil(lambda: row_of(page, "sitter")[1:4] == ["member", "active", "never"], timeout=30_000)
    assert page.notice.text() == "sitter is now a member."
    page.set_access(services.users.by_name("sitter"), "admin", in_days(2))
    qtbot.waitUntil(lambda: "cannot expire" in page.notice.text(), timeout=30_000)
    assert services.users.by_name("sitter").role == "member"


def test_an_expired_account_shows_as_expired_and_keeps_its_date_when_edited(qtbot, controller, window,
                                                                            services):
    guest = services.users.create("gran", PASSWORD, "guest", expires_at=in_days(1))
    expire_now(services, guest.id)
    page = window.show_tab("Users")
    qtbot.waitUntil(lambda: row_of(page, "gran")[2:3] == ["expired"], timeout=30_000)
    expired = services.users.by_name("gran")
    dialog = AccessDialog(None, expired)
    qtbot.addWidget(dialog)
    assert dialog.access.chosen_role() == "guest"
    assert dialog.access.expires_on() == expired.expires_on and dialog.access.expires.text() != "Never"
