"""The recovery key in the menu-bar app (pytest-qt, offscreen): the wizard's pages, the Security tab, the
printable page and the clipboard, on real services and a real key store in a scratch data folder."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")

from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QWizard  # noqa: E402

from gui.controller import VaultController  # noqa: E402
from gui.recovery import RecoveryKeyDialog, RecoveryWords  # noqa: E402
from gui.tabs import security as security_tab  # noqa: E402
from gui.wizard import FirstRunWizard  # noqa: E402
from tests.support import keep_the_recovery_key  # noqa: E402
from vaultserver.crypto.keystore import KeyRing  # noqa: E402
from vaultserver.crypto.recovery import RecoveryKey, new_phrase  # noqa: E402
from vaultserver.errors import VaultError  # noqa: E402

STRONG = "Str0ng!pass"


def opens_the_backup_keys(services, words: list[str]) -> bool:
    """Whether these words open what a backup would carry of the keys right now."""
    try:
        ring = KeyRing.from_recovery_document(services.keys.recovery_document(),
                                              RecoveryKey.from_phrase(" ".join(words)))
    except VaultError:
        return False
    return ring.current_id == services.keys.status().master_key_id


def recovery_events(services) -> int:
    return len(services.audit.recent(event="recovery_key_created"))


def words_of(check_positions: list[int], words: list[str]) -> list[str]:
    return [words[p - 1] for p in check_positions]


@pytest.fixture
def wizard(qtbot, paths, services):
    wizard = FirstRunWizard(VaultController(paths, services))
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.account.name.setText("mum")
    wizard.account.password.password.setText(STRONG)
    wizard.account.password.confirm.setText(STRONG)
    return wizard


def test_the_wizard_shows_the_words_the_key_store_now_seals_to(qtbot, wizard, services, caplog):
    caplog.set_level(logging.DEBUG)
    assert services.keys.status().recovery_fingerprint is None
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    wizard.next()
    assert wizard.currentPage() is wizard.recovery_key
    qtbot.waitUntil(lambda: len(wizard.recovery_key.words.shown_words()) == 24, timeout=30_000)
    words = wizard.recovery_key.words.shown_words()
    assert opens_the_backup_keys(services, words)
    assert services.keys.status().recovery_fingerprint is not None and recovery_events(services) == 1
    assert next_button.isEnabled()

    wizard.next()
    check = wizard.recovery_check.check
    assert [label.text() for label in check.labels] == [f"Word {p}" for p in check.positions]
    assert len(set(check.positions)) == 3 and all(1 <= p <= 24 for p in check.positions)
    right = words_of(check.positions, words)
    assert not next_button.isEnabled()
    check.entries[0].setText(right[0])
    check.entries[1].setText(right[1])
    wrong = next(w for w in ("abandon", "zoo") if w != right[2])
    check.entries[2].setText(wrong)
    assert not next_button.isEnabled()
    assert check.status.text().startswith(f"Word {check.positions[2]} does not match")
    check.entries[2].setText(f"  {right[2].upper()} ")  # case and stray spaces do not count
    assert next_button.isEnabled() and wizard.recovery_check.isComplete()

    # Going back and forth shows the same key: no second one is made behind the owner's back.
    wizard.back()
    wizard.back()
    wizard.next()
    assert wizard.recovery_key.words.shown_words() == words
    wizard.next()
    assert check.confirmed
    wizard.next()
    wizard.next()
    assert wizard.currentPage() is wizard.ready
    with qtbot.waitSignal(wizard.accepted, timeout=30_000):
        wizard.accept()
    assert recovery_events(services) == 1 and opens_the_backup_keys(services, words)
    assert wizard.recovery_key.words.shown_words() == [] and check.positions == []
    assert " ".join(words) not in caplog.text


def test_the_wizard_cannot_finish_before_the_words_are_typed_back(qtbot, wizard, services):
    wizard.next()
    qtbot.waitUntil(lambda: len(wizard.recovery_key.words.shown_words()) == 24, timeout=30_000)
    wizard.next()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.accept()
    assert "three words" in wizard.ready.error.text()
    wizard.controller.tasks.wait(30_000)
    assert wizard.result() == 0 and services.users.list() == []


def test_cancelling_the_wizard_forgets_the_words(qtbot, wizard):
    words = keep_the_recovery_key(qtbot, wizard)
    assert len(words) == 24
    wizard.reject()
    assert wizard.recovery_key.words.shown_words() == [] and wizard.recovery_key.words.phrase == ""


def test_the_security_tab_makes_then_replaces_the_recovery_key(qtbot, paths, services, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(security_tab, "confirm", lambda *args: asked.append(args[2]) or True)
    controller = VaultController(paths, services)
    page = security_tab.SecurityTab(controller)
    qtbot.addWidget(page)
    page.show()
    page.refresh()
    qtbot.waitUntil(lambda: page.recovery_fingerprint.text() == security_tab.NO_RECOVERY_KEY, timeout=30_000)
    assert "b45309" in page.recovery_fingerprint.styleSheet()

    page.recovery_button.click()  # no key yet: nothing to replace, nothing to confirm
    qtbot.waitUntil(lambda: page.recovery_dialog is not None, timeout=30_000)
    assert asked == []
    first = page.recovery_dialog.words.shown_words()
    assert len(first) == 24 and opens_the_backup_keys(services, first)
    qtbot.waitUntil(lambda: page.recovery_fingerprint.text() == services.keys.status().recovery_fingerprint,
                    timeout=30_000)
    old_fingerprint = page.recovery_fingerprint.text()
    assert page.recovery_created.text() and "b45309" not in page.recovery_fingerprint.styleSheet()
    page.recovery_dialog.reject()
    assert "not checked" in page.notice.text() and page.recovery_dialog is None

    page.recovery_button.click()
    qtbot.waitUntil(lambda: page.recovery_dialog is not None, timeout=30_000)
    assert "stops opening new backups" in asked[0] and "already made still need the old one" in asked[0]
    dialog = page.recovery_dialog
    second = dialog.words.shown_words()
    assert second != first and opens_the_backup_keys(services, second)
    assert not opens_the_backup_keys(services, first)
    qtbot.waitUntil(lambda: page.recovery_fingerprint.text() not in ("", old_fingerprint), timeout=30_000)
    assert page.recovery_fingerprint.text() == services.keys.status().recovery_fingerprint

    dialog.next_button.click()
    assert dialog.stack.currentWidget() is dialog.check and not dialog.continue_button.isEnabled()
    right = words_of(dialog.check.positions, second)
    for entry, word in zip(dialog.check.entries, right, strict=True):
        entry.setText(word.upper())
    assert dialog.continue_button.isEnabled()
    dialog.continue_button.click()
    assert page.recovery_dialog is None and "checked" in page.notice.text()
    assert dialog.words.shown_words() == [] and dialog.check.positions == []
    controller.tasks.wait(30_000)


def test_declining_the_warning_keeps_the_old_recovery_key(qtbot, paths, services, monkeypatch):
    services.keys.new_recovery_key("owner")
    before = services.keys.status().recovery_fingerprint
    monkeypatch.setattr(security_tab, "confirm", lambda *args: False)
    controller = VaultController(paths, services)
    page = security_tab.SecurityTab(controller)
    qtbot.addWidget(page)
    page.refresh()
    qtbot.waitUntil(lambda: page.recovery_fingerprint.text() == before, timeout=30_000)
    page.new_recovery_key()
    controller.tasks.wait(30_000)
    qtbot.wait(50)
    assert page.recovery_dialog is None and services.keys.status().recovery_fingerprint == before


def test_the_printable_page_holds_every_word_in_order(qtbot):
    phrase = new_phrase()
    words = RecoveryWords()
    qtbot.addWidget(words)
    words.show_phrase(phrase)
    text = words.printable().toPlainText()
    lines = text.splitlines()
    for number, word in enumerate(phrase.split(), 1):
        assert f"{number}. {word}" in lines
    assert "Vault keeps no copy" in text and "Anyone with these words and a backup" in text


def test_copy_puts_the_phrase_on_the_clipboard_until_the_dialog_closes(qtbot):
    phrase = new_phrase()
    dialog = RecoveryKeyDialog(phrase)
    qtbot.addWidget(dialog)
    dialog.words.copy_button.click()
    assert QGuiApplication.clipboard().text() == phrase
    dialog.reject()
    assert QGuiApplication.clipboard().text() == "" and dialog.words.phrase == ""
    assert all(cell.text() == "" for cell in dialog.words.cells)
