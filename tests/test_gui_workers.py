"""The admin window's Workers tab (pytest-qt, offscreen): adding a worker shows its join string with Copy,
the table follows what workers report, and Revoke refuses the token. Real services, server and SQLite."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")

from PySide6.QtGui import QGuiApplication  # noqa: E402

from gui.tabs.workers import AddWorkerDialog  # noqa: E402
from vaultserver.join_string import JoinString  # noqa: E402
from vaultserver.services.principal import AuthError  # noqa: E402


def test_adding_a_worker_shows_its_join_string_to_copy(qtbot, window, services):
    page = window.show_tab("Workers")
    page.create_worker("studio-mac")
    qtbot.waitUntil(lambda: page.join_dialog is not None and page.join_dialog.isVisible(), timeout=30_000)
    shown = page.join_dialog.text.toPlainText()
    assert services.workers.authenticate(JoinString.decode(shown).token).name == "studio-mac"
    page.join_dialog.copy()
    assert QGuiApplication.clipboard().text() == shown
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert "Added studio-mac" in page.notice.text()


def test_a_taken_name_is_refused_with_the_services_message(qtbot, window, services):
    services.workers.create("studio-mac", actor="owner", server_url="https://192.168.1.2:1027/",
                            ca_pin="ab" * 32)
    page = window.show_tab("Workers")
    page.create_worker("STUDIO-MAC")
    qtbot.waitUntil(lambda: "already a worker named studio-mac" in page.notice.text(), timeout=30_000)
    assert page.join_dialog is None


def test_the_table_follows_what_workers_report_and_revoke_refuses_the_token(qtbot, window, services):
    token = services.workers.create("gpu-box", actor="owner", server_url="https://192.168.1.2:1027/",
                                    ca_pin="ab" * 32).token
    page = window.show_tab("Workers")
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert not page.revoke_button.isEnabled()
    services.workers.seen("gpu-box", address="192.168.1.40", encoders=["libx264", "h264_nvenc"])
    services.workers.working("gpu-box", "c" * 32, "transcode", 0.4)
    qtbot.waitUntil(lambda: page.table.item(0, 3).text() == "40%", timeout=30_000)  # no click needed
    assert page.table.item(0, 1).text() == "libx264, h264_nvenc"
    assert page.table.item(0, 5).text() == "192.168.1.40"
    page.table.selectRow(0)
    assert page.revoke_button.isEnabled()
    page.revoke("gpu-box")
    qtbot.waitUntil(lambda: page.table.item(0, 6).text() == "revoked", timeout=30_000)
    assert not page.revoke_button.isEnabled()
    with pytest.raises(AuthError):
        services.workers.authenticate(token)


def test_the_add_dialog_accepts_only_a_valid_name(qtbot):
    dialog = AddWorkerDialog(None)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert not ok.isEnabled()
    dialog.name.setText("has space")
    assert not ok.isEnabled()
    dialog.name.setText("studio-mac")
    assert ok.isEnabled()
