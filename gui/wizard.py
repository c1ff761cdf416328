"""First run: create the owner's account, keep the recovery key, choose the import folder, and show where to
open Vault; or, chosen on the first page, restore the library from a backup (`gui.restore_pages`).

Pages have fixed ids spaced apart (`PAGES`), so a branch (another way in, from the first page) can slot its
own pages between them and pick them in a page's `nextId`.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from gui.controller import VaultController
from gui.icons import app_pixmap
from gui.password import PasswordField
from gui.qr import phone_url, qr_pixmap
from gui.recovery import RecoveryCheck, RecoveryWords
from gui.restore_pages import BackupFolderPage, BackupKeyPage, RestorePage
from vaultserver.runtime import urls_for


def default_owner_name() -> str:
    try:
        name = re.sub(r"[^A-Za-z0-9._@-]", "", getpass.getuser())
    except Exception:  # no login name in some sandboxes
        name = ""
    return name if len(name) >= 2 else "owner"


class AccountPage(QWizardPage):
    """The owner's account for a new library; or the other way in: restoring a library from a backup."""

    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Welcome to Vault")
        self.setSubTitle("Start a new library, or bring back one you backed up (on a new or a reinstalled "
                         "Mac).")
        self.new_library = QRadioButton("Set up a new library")
        self.new_library.setChecked(True)
        self.restore = QRadioButton("Restore from a backup…")
        self.restore.toggled.connect(self._route_changed)
        about = QLabel("You are Vault's owner: you manage it here and sign in to the gallery with this name "
                       "and password. You can add family members later.")
        about.setWordWrap(True)
        self.name = QLineEdit(default_owner_name())
        self.name.setAccessibleName("Owner name")
        self.password = PasswordField()
        self.fields = QWidget()
        fields = QVBoxLayout(self.fields)
        fields.setContentsMargins(24, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Name"))
        row.addWidget(self.name)
        fields.addWidget(about)
        fields.addLayout(row)
        fields.addWidget(self.password)
        restoring = QLabel("Your backup folder and your recovery key bring back the library with its "
                           "accounts, albums and settings.")
        restoring.setWordWrap(True)
        restoring.setContentsMargins(24, 0, 0, 0)
        layout = QVBoxLayout(self)
        layout.addWidget(self.new_library)
        layout.addWidget(self.fields)
        layout.addWidget(self.restore)
        layout.addWidget(restoring)
        layout.addStretch(1)
        self.name.textChanged.connect(self.completeChanged)
        self.password.changed.connect(self.completeChanged)

    @property
    def restoring(self) -> bool:
        return self.restore.isChecked()

    def _route_changed(self) -> None:
        self.fields.setEnabled(not self.restoring)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.restoring or (len(self.name.text().strip()) >= 2 and self.password.acceptable)

    def nextId(self) -> int:
        return PAGES["restore_folder"] if self.restoring else PAGES["recovery_key"]


class RecoveryKeyPage(QWizardPage):
    """Makes the recovery key the first time it is reached and shows it. Only once: Back and Next show the
    same key again; a new one is made only by Try Again after a failure, which the owner clicks."""

    def __init__(self, controller: VaultController, owner_name: Callable[[], str],
                 made: Callable[[str], None]) -> None:
        super().__init__()
        self.setTitle("Your recovery key")
        self.setSubTitle("Print it or write it down now: Vault shows it only this once.")
        self.controller, self._owner_name, self._made_callback = controller, owner_name, made
        self.words = RecoveryWords()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.retry = QPushButton("Try Again")
        self.retry.clicked.connect(self.make)
        self.retry.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.words)
        layout.addWidget(self.status)
        layout.addWidget(self.retry, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        self._asked = False
        self._closed = False

    def initializePage(self) -> None:
        if not self._asked:
            self.make()

    def make(self) -> None:
        self._asked = True
        self.retry.hide()
        self.status.setStyleSheet("")
        self.status.setText("Making your recovery key…")
        keys, actor = self.controller.services.keys, self._owner_name()
        self.controller.run(lambda: keys.new_recovery_key(actor), self._made, self._failed)

    def _made(self, phrase: str) -> None:
        if self._closed:  # the wizard closed meanwhile: show the phrase to no one, keep it nowhere
            return
        self.status.clear()
        self.words.show_phrase(phrase)
        self._made_callback(phrase)
        self.completeChanged.emit()

    def _failed(self, message: str) -> None:
        self.status.setStyleSheet("color: #b91c1c")
        self.status.setText(f"Could not make the recovery key: {message}")
        self.retry.show()

    def isComplete(self) -> bool:
        return bool(self.words.phrase)

    def forget(self) -> None:
        self._closed = True
        self.words.clear()


class RecoveryCheckPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Check your recovery key")
        self.setSubTitle("Vault keeps no copy of it, so make sure yours is right.")
        self.check = RecoveryCheck()
        self.check.changed.connect(self.completeChanged)
        QVBoxLayout(self).addWidget(self.check)

    def isComplete(self) -> bool:
        return self.check.confirmed


class FoldersPage(QWizardPage):
    def __init__(self, folder: Path, keep_originals: bool) -> None:
        super().__init__()
        self.setTitle("Where do new photos and videos come from?")
        self.setSubTitle("Drop files into this folder (or use Import Files… in the menu bar). Vault converts "
                         "and encrypts them, then removes the copy from the folder.")
        self.folder = QLineEdit(str(folder))
        self.folder.setAccessibleName("Import folder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        self.keep = QCheckBox("Also keep each original file, encrypted, in the library")
        self.keep.setChecked(keep_originals)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        layout.addLayout(row)
        layout.addWidget(self.keep)
        layout.addStretch(1)
        self.folder.textChanged.connect(self.completeChanged)

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Import folder", self.folder.text())
        if chosen:
            self.folder.setText(chosen)

    def isComplete(self) -> bool:
        return bool(self.folder.text().strip())


class ReadyPage(QWizardPage):
    def __init__(self, urls: list[str]) -> None:
        super().__init__()
        self.setTitle("Vault is ready")
        self.setSubTitle("On a phone or computer on your home network (or the home VPN), open:")
        links = "<br>".join(f"<b>{u}</b>" for u in urls) or "<b>(no network address found)</b>"
        self.urls = QLabel(links)
        self.urls.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        note = QLabel("Or point the phone's camera at the code. The first time, the browser warns that the "
                      "certificate is not trusted: Vault made its own. Check the address, then continue. "
                      "Sign in with the name and password you just chose.")
        note.setWordWrap(True)
        self.error = QLabel()
        self.error.setStyleSheet("color: #b91c1c")
        self.error.setWordWrap(True)
        self.qr = QLabel()
        self.qr.setAccessibleName("QR code of the address")
        self.qr.setPixmap(qr_pixmap(phone_url(urls)))
        self.qr.setVisible(not self.qr.pixmap().isNull())
        row = QHBoxLayout()
        row.addWidget(self.urls, 1)
        row.addWidget(self.qr)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(note)
        layout.addWidget(self.error)
        layout.addStretch(1)

    def nextId(self) -> int:
        return -1  # the end of the new library's way; the restore's pages come after it in number only


# Page ids: the default order follows them; the gaps leave room for pages a branch adds. The restore's way
# (from the first page) is restore_folder, restore_key, restore.
PAGES = {"account": 10, "recovery_key": 20, "recovery_check": 30, "folders": 40, "ready": 50,
         "restore_folder": 60, "restore_key": 70, "restore": 80}


class FirstRunWizard(QWizard):
    """Finishing saves the account and settings off the UI thread; the dialog closes once both are stored.
    It cannot finish before the recovery key's words were typed back."""

    def __init__(self, controller: VaultController) -> None:
        super().__init__()
        self.controller = controller
        self.setWindowTitle("Welcome to Vault")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setPixmap(QWizard.WizardPixmap.LogoPixmap, app_pixmap(48))
        settings = controller.services.settings.current
        self.account = AccountPage()
        self.recovery_check = RecoveryCheckPage()
        self.recovery_key = RecoveryKeyPage(controller, lambda: self.account.name.text().strip(),
                                            self.recovery_check.check.ask)
        self.folders = FoldersPage(controller.import_folder, settings.keep_originals)
        self.ready = ReadyPage(urls_for(settings.host, settings.port))
        self.restore_folder = BackupFolderPage(controller)
        self.restore_key = BackupKeyPage(controller, self.restore_folder)
        self.restore = RestorePage(controller, self.restore_folder, self.restore_key)
        for name, page in (("account", self.account), ("recovery_key", self.recovery_key),
                           ("recovery_check", self.recovery_check), ("folders", self.folders),
                           ("ready", self.ready), ("restore_folder", self.restore_folder),
                           ("restore_key", self.restore_key), ("restore", self.restore)):
            self.setPage(PAGES[name], page)
        self.setMinimumSize(560, 460)
        self._saved = False

    def accept(self) -> None:
        if self._saved or self.account.restoring:  # a restored library has its accounts and recovery key
            if self._saved or self.restore.outcome is not None:
                super().accept()
            return
        if not self.recovery_check.check.confirmed:
            self.ready.error.setText("Type back three words of your recovery key first: go back to it.")
            return
        self.button(QWizard.WizardButton.FinishButton).setEnabled(False)
        self.ready.error.setText("Saving…")
        name, password = self.account.name.text().strip(), self.account.password.text()
        folder, keep = self.folders.folder.text().strip(), self.folders.keep.isChecked()
        services = self.controller.services
        default = services.settings.current.import_path(services.paths)

        def save() -> None:
            services.users.create(name, password, "admin", actor=name)
            changes: dict[str, bool | str] = {"keep_originals": keep}
            if Path(folder).expanduser() != default:
                changes["import_dir"] = folder
            services.settings.update(**changes)

        self.controller.run(save, self._done, self._failed)

    def done(self, result: int) -> None:
        """However it closes, the recovery key's words go with it. Not while a restore runs: it finishes."""
        if self.restore.running:
            return
        self.recovery_key.forget()
        self.recovery_check.check.clear()
        self.restore_key.forget()
        super().done(result)

    def _done(self, _: object) -> None:
        self._saved = True
        self.accept()

    def _failed(self, message: str) -> None:
        self.ready.error.setText(f"Could not finish: {message}. Go back to change it.")
        self.button(QWizard.WizardButton.FinishButton).setEnabled(True)
