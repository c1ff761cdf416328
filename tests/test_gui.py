"""The menu-bar app, offscreen (pytest-qt): wizard, controller, each admin tab, tray, smoke test.

Every action goes through the real services on a real data dir, with the real server and pipeline running.
"""

from __future__ import annotations

import csv
import hashlib
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QWizard  # noqa: E402

from gui.controller import VaultController  # noqa: E402
from gui.tabs import library as library_tab  # noqa: E402
from gui.tabs import network as network_tab  # noqa: E402
from gui.tabs import security as security_tab  # noqa: E402
from gui.tray import TrayMenu  # noqa: E402
from gui.wizard import FirstRunWizard  # noqa: E402
from tests.conftest import OWNER, OWNER_PASSWORD, VIEWER  # noqa: E402
from tests.support import keep_the_recovery_key  # noqa: E402
from vaultserver.server import client_context  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STRONG = "Str0ng!pass"


def settle(qtbot, controller) -> None:
    """Wait for the background work a tab started, and for its answer to reach the UI thread."""
    controller.tasks.wait(30_000)
    qtbot.wait(50)


def test_wizard_creates_the_owner_and_saves_the_import_folder(qtbot, paths, services, tmp_path):
    vault = VaultController(paths, services)
    assert vault.needs_setup
    wizard = FirstRunWizard(vault)
    qtbot.addWidget(wizard)
    wizard.show()
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    account = wizard.account
    account.name.setText("mum")
    account.password.password.setText("short")
    assert not next_button.isEnabled()
    assert account.password.rules["at least 8 characters"].text().startswith("•")
    account.password.password.setText(STRONG)
    account.password.confirm.setText(STRONG + "x")
    assert not next_button.isEnabled() and account.password.mismatch.isVisibleTo(wizard)
    account.password.confirm.setText(STRONG)
    assert next_button.isEnabled()
    assert all(label.text().startswith("✓") for label in account.password.rules.values())
    keep_the_recovery_key(qtbot, wizard)
    folder = tmp_path / "Drop here"
    wizard.folders.folder.setText(str(folder))
    wizard.folders.keep.setChecked(True)
    wizard.next()
    assert ":1027/" in wizard.ready.urls.text()
    assert wizard.ready.qr.isVisibleTo(wizard) and not wizard.ready.qr.pixmap().isNull()
    with qtbot.waitSignal(wizard.accepted, timeout=30_000):
        wizard.accept()
    owner = services.users.by_name("mum")
    assert owner.role == "admin"
    assert services.users.authenticate("mum", STRONG, "127.0.0.1").id == owner.id
    assert services.settings.current.import_dir == str(folder)
    assert services.settings.current.keep_originals
    assert not vault.needs_setup


def test_wizard_shows_why_the_account_was_refused(qtbot, paths, services):
    services.users.create("mum", STRONG, "member")
    wizard = FirstRunWizard(VaultController(paths, services))
    qtbot.addWidget(wizard)
    wizard.account.name.setText("mum")
    wizard.account.password.password.setText(STRONG)
    wizard.account.password.confirm.setText(STRONG)
    keep_the_recovery_key(qtbot, wizard)
    wizard.accept()
    qtbot.waitUntil(lambda: "already exists" in wizard.ready.error.text(), timeout=30_000)
    assert wizard.result() == 0 and wizard.button(QWizard.WizardButton.FinishButton).isEnabled()


def test_controller_reports_each_state(qtbot, controller, media):
    states: list[str] = []
    controller.status_changed.connect(lambda status: states.append(status.state))
    qtbot.waitUntil(lambda: controller.status.state == "running")
    assert controller.status.urls == [controller.runtime.endpoint.url]

    controller.pause()
    qtbot.waitUntil(lambda: controller.status.state == "paused")
    media.copy_into(media.image("state.jpg"), controller.import_folder)
    qtbot.waitUntil(lambda: controller.status.counts.queued == 1, timeout=30_000)
    assert controller.status.summary == "Processing paused (1 waiting)"
    with qtbot.waitSignal(controller.notify, timeout=60_000) as finished:
        controller.resume()
    assert finished.args == ["Import finished", "1 file added to the library."]
    qtbot.waitUntil(lambda: controller.status.state == "running")

    controller.stop_server()
    qtbot.waitUntil(lambda: controller.status.state == "stopped", timeout=30_000)
    assert controller.runtime.endpoint is None
    controller.start_server()
    qtbot.waitUntil(lambda: controller.status.state == "running", timeout=30_000)
    assert {"paused", "running", "stopped"} <= set(states)


def test_a_failed_import_is_announced(qtbot, controller):
    (controller.import_folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    def about_a_failure(title: str, _text: str) -> bool:
        return title == "A file could not be imported"

    with qtbot.waitSignal(controller.notify, timeout=60_000, check_params_cb=about_a_failure) as sig:
        pass
    assert "broken.jpg" in sig.args[1]
    assert (controller.paths.failed / "broken.jpg").exists()


@pytest.mark.slow
def test_the_ui_stays_responsive_while_a_video_is_converted(qtbot, controller, media):
    gaps: list[float] = []
    last = [time.monotonic()]

    def tick() -> None:
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(20)
    media.copy_into(media.video(seconds=4, size="1280x720"), controller.import_folder, "long.mp4")
    qtbot.waitUntil(lambda: controller.status.counts.processing == 1, timeout=30_000)
    start = len(gaps)
    qtbot.waitUntil(lambda: controller.status.counts.done == 1, timeout=180_000)
    timer.stop()
    during = gaps[start:]
    assert len(during) > 20, "the conversion should take a while"
    assert max(during) < 1.0, f"the UI thread stalled for {max(during):.2f} s"  # a freeze is seconds


def test_dashboard_shows_urls_viewers_and_queue_progress(qtbot, controller, window, services, media):
    viewer = services.users.by_name(VIEWER)
    services.sessions.create(viewer, device_name="Safari on iPhone")
    media.copy_into(media.image("dash.jpg"), controller.import_folder)
    page = window.show_tab("Dashboard")
    qtbot.waitUntil(lambda: controller.status.counts.done == 1, timeout=60_000)
    qtbot.waitUntil(lambda: page.queue.rowCount() == 1 and page.queue.item(0, 1).text() == "Added")
    assert page.queue.cellWidget(0, 2).value() == 100
    assert controller.runtime.endpoint.url in page.urls.text()
    assert not page.qr.isVisibleTo(page)  # only localhost here: nothing a phone could open
    assert VIEWER in page.viewers.text()
    page.pause.click()
    qtbot.waitUntil(lambda: page.pause.text() == "Resume Processing")
    assert controller.runtime.paused


def test_library_shows_thumbnails_and_deletes_after_confirmation(qtbot, controller, window, services, media,
                                                               monkeypatch):
    media.copy_into(media.image("keep.jpg"), controller.import_folder)
    media.copy_into(media.image("drop.jpg", size=(320, 240)), controller.import_folder)
    qtbot.waitUntil(lambda: len(services.library.all_items()) == 2, timeout=60_000)
    page = window.show_tab("Library")
    qtbot.waitUntil(lambda: page.items.count() == 2 and all(
        not page.items.item(i).icon().isNull() for i in range(2)), timeout=30_000)
    names = {page.items.item(i).data(256).original_name: i for i in range(2)}
    page.items.setCurrentRow(names["drop.jpg"])
    asked: list[str] = []
    monkeypatch.setattr(library_tab, "confirm", lambda *args: asked.append(args[2]) or False)
    page.delete_selected()
    settle(qtbot, controller)
    assert len(services.library.all_items()) == 2 and "cannot be recovered" in asked[0]
    monkeypatch.setattr(library_tab, "confirm", lambda *args: True)
    page.delete_selected()
    qtbot.waitUntil(lambda: page.items.count() == 1, timeout=30_000)
    assert [m.original_name for m in services.library.all_items()] == ["keep.jpg"]


def test_library_pages_through_a_big_library(qtbot, controller, window, services, media, monkeypatch):
    for n in range(3):
        media.copy_into(media.image(f"page{n}.jpg", size=(200 + n, 150)), controller.import_folder)
    qtbot.waitUntil(lambda: len(services.library.all_items()) == 3, timeout=60_000)
    monkeypatch.setattr(library_tab, "PAGE", 2)
    page = window.show_tab("Library")
    qtbot.waitUntil(lambda: page.items.count() == 2 and page.more_button.isVisibleTo(page), timeout=30_000)
    assert page.notice.text() == "2 of 3 items"
    page.more_button.click()
    qtbot.waitUntil(lambda: page.items.count() == 3 and not page.more_button.isVisibleTo(page),
                    timeout=30_000)
    names = {page.items.item(i).data(256).original_name for i in range(3)}
    assert names == {"page0.jpg", "page1.jpg", "page2.jpg"}


def test_users_tab_adds_disables_and_resets(qtbot, controller, window, services):
    page = window.show_tab("Users")
    qtbot.waitUntil(lambda: page.table.rowCount() == 2)
    page.create_user("grandma", "weak", "member")
    qtbot.waitUntil(lambda: "password needs" in page.notice.text().lower() or "must" in page.notice.text())
    page.create_user("grandma", STRONG, "member")
    qtbot.waitUntil(lambda: page.table.rowCount() == 3, timeout=30_000)
    grandma = services.users.by_name("grandma")
    tokens = services.sessions.create(grandma, device_name="iPad")

    page.table.selectRow([page.table.item(r, 0).text() for r in range(3)].index("grandma"))
    assert page.active_button.text() == "Disable"
    page.toggle_active()
    qtbot.waitUntil(lambda: not services.users.by_name("grandma").is_active, timeout=30_000)
    # The button changes once the whole change is done: the account disabled, then its devices signed out.
    qtbot.waitUntil(lambda: page.active_button.text() == "Enable", timeout=30_000)
    with pytest.raises(Exception, match="revoked|ended|signed out|Session"):
        services.sessions.authenticate(tokens.access_token)
    page.set_access(services.users.by_name("grandma"), "admin", None)
    qtbot.waitUntil(lambda: services.users.by_name("grandma").role == "admin", timeout=30_000)
    page._change(services.users.by_name("grandma"), "done", password="N3w!password", is_active=True)
    qtbot.waitUntil(lambda: page.notice.text() == "done", timeout=30_000)
    assert services.users.authenticate("grandma", "N3w!password", "127.0.0.1")


def test_user_dialog_accepts_only_a_policy_password(qtbot):
    from gui.tabs.users import UserDialog

    dialog = UserDialog(None)
    qtbot.addWidget(dialog)
    ok = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    dialog.name.setText("sam")
    dialog.password.password.setText("password")
    dialog.password.confirm.setText("password")
    assert not ok.isEnabled()
    dialog.password.password.setText(STRONG)
    dialog.password.confirm.setText(STRONG)
    assert ok.isEnabled()


def test_sessions_tab_signs_a_device_out(qtbot, controller, window, services):
    viewer = services.users.by_name(VIEWER)
    tokens = services.sessions.create(viewer, device_name="Chrome on Android", ip="192.168.1.40")
    page = window.show_tab("Sessions")
    qtbot.waitUntil(lambda: page.table.rowCount() == 1, timeout=30_000)
    assert page.table.item(0, 1).text() == "Chrome on Android"
    page.table.selectRow(0)
    page.revoke_selected()
    qtbot.waitUntil(lambda: page.table.rowCount() == 0, timeout=30_000)
    with pytest.raises(Exception):  # noqa: B017 - any refusal will do; test_api checks the exact code
        services.sessions.authenticate(tokens.access_token)


def test_network_tab_applies_settings_and_refuses_bad_ones(qtbot, controller, window, services):
    page = window.show_tab("Network")
    form = page.form
    form.editors["vpn_subnet"].setText("10.9.0.0/24")
    form.apply()
    qtbot.waitUntil(lambda: form.result.text() == "Saved.", timeout=30_000)
    assert services.settings.current.vpn_subnet == "10.9.0.0/24"
    form.editors["allowed_networks"].setPlainText("192.168.1.0/24\nnot-a-network")
    form.apply()
    qtbot.waitUntil(lambda: "allowed_networks" in form.result.text(), timeout=30_000)
    assert services.settings.current.allowed_networks == ["127.0.0.1/32", "::1/128", "192.168.1.0/24"]


def test_a_new_port_restarts_the_server_there(qtbot, controller, window, services):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    page = window.show_tab("Network")
    page.form.editors["host"].setText("127.0.0.1")
    page.form.editors["port"].setValue(free)
    with qtbot.waitSignal(controller.message, timeout=30_000) as said:
        page.form.apply()
    assert f"port {free}" in said.args[0]
    qtbot.waitUntil(lambda: controller.runtime.endpoint and controller.runtime.endpoint.port == free,
                    timeout=30_000)
    import urllib.request

    context = client_context(str(controller.paths.private / "tls" / "ca.pem"))
    with urllib.request.urlopen(f"https://localhost:{free}/api/health", context=context, timeout=10) as r:
        assert r.status == 200


def test_network_tab_issues_a_new_certificate(qtbot, controller, window, monkeypatch):
    monkeypatch.setattr(network_tab, "confirm", lambda *args: True)
    page = window.show_tab("Network")
    qtbot.waitUntil(lambda: bool(page.fingerprint.text()), timeout=30_000)
    before = page.fingerprint.text()
    page.regenerate()
    qtbot.waitUntil(lambda: page.notice.text() == "New certificate in use.", timeout=60_000)
    assert page.fingerprint.text() != before
    assert controller.runtime.server.alive
    pem = ssl.get_server_certificate(("127.0.0.1", controller.runtime.endpoint.port), timeout=10)
    assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest().hex(":") == page.fingerprint.text()


def test_network_tab_tells_the_owner_to_re_trust_a_replaced_authority(qtbot, controller, window):
    from datetime import UTC, datetime

    from vaultserver.crypto.tls import CA_REPLACED

    page = window.show_tab("Network")
    qtbot.waitUntil(lambda: bool(page.fingerprint.text()), timeout=30_000)
    assert page.ca_notice.isHidden()
    (controller.paths.private / "tls" / CA_REPLACED).write_text(datetime.now(UTC).isoformat())
    page.refresh()
    qtbot.waitUntil(lambda: "install" in page.ca_notice.text(), timeout=30_000)
    assert not page.ca_notice.isHidden() and "ca.pem" in page.ca_notice.text()


def test_import_files_copies_them_in_and_leaves_the_owner_s_files_alone(qtbot, controller, services, media):
    photo = media.image("picked.jpg")
    copied: list = []
    controller.import_files([photo], copied.append)
    qtbot.waitUntil(lambda: len(services.library.all_items()) == 1, timeout=60_000)
    assert copied == [[controller.import_folder / "picked.jpg"]] and photo.exists()
    assert services.library.all_items()[0].original_name == "picked.jpg"


def test_storage_tab_changes_keep_originals(qtbot, controller, window, services):
    page = window.show_tab("Storage")
    labels = [page.folders.itemAt(i, page.folders.ItemRole.LabelRole).widget().text()
              for i in range(page.folders.rowCount())]
    assert labels == ["Import folder", "Failed imports", "Encrypted library", "Data folder"]
    page.form.editors["keep_originals"].setChecked(True)
    page.form.apply()
    qtbot.waitUntil(lambda: services.settings.current.keep_originals, timeout=30_000)


def test_security_tab_rotates_the_master_key(qtbot, controller, window, services, monkeypatch):
    monkeypatch.setattr(security_tab, "confirm", lambda *args: True)
    page = window.show_tab("Security")
    before = services.keys.status().master_key_id
    qtbot.waitUntil(lambda: page.key_id.text() == before, timeout=30_000)
    page.rotate()
    qtbot.waitUntil(lambda: page.key_id.text() not in ("", before), timeout=60_000)
    assert services.keys.status().master_key_id == page.key_id.text()
    assert "re-wrapped" in page.notice.text()


def test_activity_tab_filters_and_exports_csv(qtbot, controller, window, services, tmp_path):
    services.users.authenticate(OWNER, OWNER_PASSWORD, "127.0.0.1")
    services.users.create("grandma", STRONG, "member", actor=OWNER)
    page = window.show_tab("Activity")
    qtbot.waitUntil(lambda: page.table.rowCount() >= 3 and page.event_choice.count() > 1, timeout=30_000)
    page.event_choice.setCurrentIndex(page.event_choice.findData("user_created"))
    qtbot.waitUntil(lambda: page.table.rowCount() == 3 and {page.table.item(r, 1).text()
                                                            for r in range(3)} == {"user_created"})
    dest = tmp_path / "log.csv"
    page.export(dest)
    qtbot.waitUntil(lambda: "Exported 3 entries" in page.notice.text(), timeout=30_000)
    rows = list(csv.DictReader(dest.open(encoding="utf-8")))
    assert {r["resource"] for r in rows} == {OWNER, VIEWER, "grandma"}


def test_tray_menu_follows_the_state(qtbot, controller):
    shown: list[bool] = []
    tray = TrayMenu(controller, lambda: shown.append(True), lambda: None)
    qtbot.waitUntil(lambda: tray.status_action.text() == "Running")
    assert tray.url_action.text() == controller.runtime.endpoint.url
    assert tray.gallery_action.isEnabled()
    tray.pause_action.trigger()
    qtbot.waitUntil(lambda: tray.pause_action.text() == "Resume Processing")
    assert "paused" in tray.icon.toolTip().lower()
    tray.server_action.trigger()
    qtbot.waitUntil(lambda: tray.server_action.text() == "Start Server", timeout=30_000)
    assert tray.url_action.text() == "Not serving" and not tray.gallery_action.isEnabled()


def _gui(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "gui", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_smoke_test_starts_the_app_and_checks_health_over_https():
    result = _gui("--smoke-test")
    assert result.returncode == 0, result.stderr
    assert "answered 200" in result.stdout and "smoke test passed" in result.stdout


@pytest.mark.slow
def test_screenshot_mode_renders_every_tab_and_the_wizard(tmp_path):
    out = REPO / "docs" / "screenshots" if os.environ.get("VAULT_SCREENSHOTS") else tmp_path
    result = _gui("--screenshot", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    from gui.window import TABS

    expected = [f"admin-{cls.title.lower()}.png" for cls in TABS] + [f"wizard-{i}.png" for i in range(1, 6)]
    expected += [f"wizard-restore-{i}.png" for i in range(1, 4)]
    for name in expected:
        assert (out / name).stat().st_size > 5_000, name


def test_open_at_login_writes_and_removes_the_launch_agent(qtbot, controller, monkeypatch, tmp_path):
    from vaultserver import login_item

    assert not TrayMenu(controller, lambda: None, lambda: None).login_action.isVisible()  # only in the app
    monkeypatch.setattr(login_item, "supported", lambda: True)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    tray = TrayMenu(controller, lambda: None, lambda: None)
    assert tray.login_action.isVisible() and not tray.login_action.isChecked()
    tray.login_action.trigger()
    agent = tmp_path / "Library" / "LaunchAgents" / f"{login_item.LABEL}.plist"
    assert tray.login_action.isChecked() and sys.executable in agent.read_text()
    tray.login_action.trigger()
    assert not agent.exists() and not tray.login_action.isChecked()


def test_first_run_shows_the_wizard_then_the_window_where_there_is_no_tray(qtbot, paths, services):
    from gui.app import VaultApp

    vault = VaultController(paths, services, host="127.0.0.1", port=0, poll_ms=100)
    app = VaultApp(vault, use_tray=False)
    qtbot.addWidget(app.window)
    app.begin()
    assert app.wizard is not None and app.wizard.isVisible() and not app.window.isVisible()
    qtbot.addWidget(app.wizard)
    app.wizard.account.name.setText("mum")
    app.wizard.account.password.password.setText(STRONG)
    app.wizard.account.password.confirm.setText(STRONG)
    keep_the_recovery_key(qtbot, app.wizard)
    with qtbot.waitSignal(vault.started, timeout=60_000):
        app.wizard.accept()
    qtbot.waitUntil(app.window.isVisible)
    assert app.window.quit_on_close and vault.runtime.server.alive
    assert services.users.by_name("mum").role == "admin"
    vault.shutdown()


def test_a_second_vault_on_the_same_data_dir_is_refused_with_a_message(qtbot, controller, paths, services,
                                                                         monkeypatch):
    from gui import app as gui_app

    shown: list[str] = []
    monkeypatch.setattr(gui_app.QMessageBox, "critical", lambda _parent, _title, text: shown.append(text))
    monkeypatch.setattr(gui_app.QCoreApplication, "quit", lambda: None)
    second = VaultController(paths, services, host="127.0.0.1", port=0)
    vault = gui_app.VaultApp(second, use_tray=False)
    qtbot.addWidget(vault.window)
    with qtbot.waitSignal(second.start_failed, timeout=30_000):
        vault.begin()
    assert shown and "already running" in shown[0]


def test_a_port_in_use_leaves_vault_running_until_the_owner_picks_another(qtbot, paths, services):
    import socket

    services.users.create(OWNER, OWNER_PASSWORD, "admin")
    with socket.socket() as taken, socket.socket() as probe:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
        probe.close()
        vault = VaultController(paths, services, host="127.0.0.1", port=taken.getsockname()[1], poll_ms=100)
        with qtbot.waitSignal(vault.started, timeout=30_000):
            vault.start()
        try:
            qtbot.waitUntil(lambda: vault.status.state == "error")
            assert f":{taken.getsockname()[1]}" in vault.status.summary and vault.runtime.pipeline
            vault.update_settings({"host": "127.0.0.1", "port": free})
            qtbot.waitUntil(lambda: vault.status.state == "running", timeout=30_000)
            assert vault.runtime.endpoint.port == free and vault.status.error is None
        finally:
            vault.shutdown()


def test_the_qr_code_carries_a_lan_address_never_localhost(qtbot):
    from gui.qr import phone_url, qr_pixmap

    urls = ["https://mac-mini.local:1027/", "https://192.168.1.5:1027/", "https://localhost:1027/"]
    assert phone_url(urls) == "https://mac-mini.local:1027/"
    assert phone_url(["https://localhost:1027/"]) == ""
    code = qr_pixmap(phone_url(urls), scale=4)
    assert not code.isNull() and code.width() == code.height() >= 29 * 4
    assert qr_pixmap("").isNull()
