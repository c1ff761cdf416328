"""Users: add family members and guests, reset a password, set a role, an expiry date and whether the account
may download and upload, disable or delete an account."""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import QDate
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.controller import VaultController
from gui.password import PasswordField
from gui.tabs import ACTOR, Tab, confirm, fill_table, make_table, selected_key, when
from vaultserver.services.users import UserView

ROLE_CHOICES = (("Member (sees the whole library)", "member"),
                ("Guest (sees only albums shared with them)", "guest"),
                ("Admin (also manages Vault)", "admin"))


class AccessFields(QFormLayout):
    """Who an account is: its role, and the date it stops (as that day begins; "Never" by default; an
    administrator never expires)."""

    def __init__(self) -> None:
        super().__init__()
        self.role = QComboBox()
        for label, role in ROLE_CHOICES:
            self.role.addItem(label, role)
        self.role.setAccessibleName("role")
        self.expires = QDateEdit()
        self.expires.setCalendarPopup(True)
        self.expires.setDisplayFormat("yyyy-MM-dd")
        # The earliest date stands for "never": today is no expiry to give (it began at midnight).
        self.expires.setMinimumDate(QDate.currentDate())
        self.expires.setSpecialValueText("Never")
        self.expires.setDate(QDate.currentDate())
        self.expires.setAccessibleName("expires on")
        self.expires.setToolTip("The account stops as this day begins. Guests and members only.")
        self.addRow("Role", self.role)
        self.addRow("Expires on", self.expires)
        self.role.currentIndexChanged.connect(self._role_changed)

    def show_account(self, role: str, expires_on: date | None) -> None:
        self.role.setCurrentIndex(max(self.role.findData(role), 0))
        day = QDate(expires_on.year, expires_on.month, expires_on.day) if expires_on else None
        if day is not None and day <= self.expires.minimumDate():
            # An expired account shows its date, not "Never": keeping it must not extend it for ever.
            self.expires.setMinimumDate(day.addDays(-1))
        self.expires.setDate(day or self.expires.minimumDate())
        self._role_changed()

    def chosen_role(self) -> str:
        return str(self.role.currentData())

    def expires_on(self) -> date | None:
        chosen = self.expires.date()
        if chosen == self.expires.minimumDate():
            return None
        return date(chosen.year(), chosen.month(), chosen.day())

    def _role_changed(self) -> None:
        is_admin = self.chosen_role() == "admin"
        if is_admin:
            self.expires.setDate(self.expires.minimumDate())
        self.expires.setEnabled(not is_admin)


class UserDialog(QDialog):
    """A new account (name, role, expiry, password) or a new password for an existing one."""

    def __init__(self, parent: QWidget | None, username: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"New password for {username}" if username else "Add a user")
        self.name = QLineEdit(username or "")
        self.name.setEnabled(username is None)
        self.access = AccessFields()
        self.password = PasswordField()
        buttons = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(buttons.Ok | buttons.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        if username is None:
            layout.addLayout(_labelled("Name", self.name))
            layout.addLayout(self.access)
        layout.addWidget(self.password)
        layout.addWidget(self.buttons)
        self.password.changed.connect(self._check)
        self.name.textChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        ok = self.password.acceptable and len(self.name.text().strip()) >= 2
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)


class AccessDialog(QDialog):
    """An existing account's role, expiry date, and whether it may download and upload."""

    def __init__(self, parent: QWidget | None, user: UserView) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Role and expiry of {user.username}")
        self.access = AccessFields()
        self.access.show_account(user.role, user.expires_on)
        self.can_download = QCheckBox("May download photos and videos to keep")
        self.can_download.setChecked(user.can_download)
        self.can_upload = QCheckBox("May upload photos and videos from a browser")
        self.can_upload.setChecked(user.can_upload)
        for box in (self.can_download, self.can_upload):
            box.setAccessibleName(box.text())
            self.access.addRow("", box)
        buttons = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(buttons.Ok | buttons.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(self.access)
        layout.addWidget(self.buttons)


def _labelled(label: str, field: QWidget) -> QFormLayout:
    form = QFormLayout()
    form.addRow(label, field)
    return form


def _status(user: UserView) -> str:
    return "disabled" if not user.is_active else "expired" if user.expired() else "active"


class UsersTab(Tab):
    title = "Users"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.table = make_table(["Name", "Role", "Status", "Expires", "Last sign-in", "Created"])
        self.table.setAccessibleName("users")
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.add_button = QPushButton("Add…")
        self.add_button.clicked.connect(self.add_user)
        self.password_button = QPushButton("Reset Password…")
        self.password_button.clicked.connect(self.reset_password)
        self.role_button = QPushButton("Role and Expiry…")
        self.role_button.clicked.connect(self.edit_access)
        self.active_button = QPushButton("Disable")
        self.active_button.clicked.connect(self.toggle_active)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.delete_user)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.password_button, self.role_button, self.active_button,
                       self.delete_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Everyone who may sign in to the gallery. Members see the whole library, "
                                "guests only the albums shared with them; either may have an expiry date. "
                                "Disabling an account or setting a new password signs it out on every "
                                "device."))
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        self.users: dict[str, UserView] = {}
        self._selection_changed()

    def refresh(self) -> None:
        self.load(self.controller.services.users.list, self._show)

    def _show(self, users: list[UserView]) -> None:
        self.users = {u.id: u for u in users}
        fill_table(self.table, [(u.username, u.role, _status(u), f"{u.expires_on or 'never'}",
                                 when(u.last_login_at) or "never", when(u.created_at)) for u in users],
                   [u.id for u in users])
        self._selection_changed()

    def selected(self) -> UserView | None:
        key = selected_key(self.table)
        return self.users.get(key) if key is not None else None

    def _selection_changed(self) -> None:
        user = self.selected()
        for button in (self.password_button, self.role_button, self.active_button, self.delete_button):
            button.setEnabled(user is not None)
        if user:
            self.active_button.setText("Disable" if user.is_active else "Enable")

    def _change(self, user: UserView, done_text: str, *, password: str | None = None, role: str | None = None,
                is_active: bool | None = None) -> None:
        """One change to an account (the others left as they are: None)."""
        services = self.controller.services
        self.act(lambda: services.change_user(user.id, actor_name=ACTOR, password=password, role=role,
                                              is_active=is_active), done_text)

    def add_user(self) -> None:
        dialog = UserDialog(self)
        if not dialog.exec():
            return
        name, password = dialog.name.text().strip(), dialog.password.text()
        self.create_user(name, password, dialog.access.chosen_role(), dialog.access.expires_on())

    def create_user(self, name: str, password: str, role: str, expires_on: date | None = None) -> None:
        users = self.controller.services.users
        self.act(lambda: users.create(name, password, role, actor=ACTOR, expires_at=expires_on),
                 f"Added {name}.")

    def reset_password(self) -> None:
        user = self.selected()
        if user is None:
            return
        dialog = UserDialog(self, user.username)
        if dialog.exec():
            self._change(user, f"New password set for {user.username}; their devices were signed out.",
                         password=dialog.password.text())

    def edit_access(self) -> None:
        user = self.selected()
        if user is None:
            return
        dialog = AccessDialog(self, user)
        if dialog.exec():
            self.set_access(user, dialog.access.chosen_role(), dialog.access.expires_on(),
                            can_download=dialog.can_download.isChecked(),
                            can_upload=dialog.can_upload.isChecked())

    def set_access(self, user: UserView, role: str, expires_on: date | None, *,
                   can_download: bool | None = None, can_upload: bool | None = None) -> None:
        """The account's role, expiry date (None: never) and rights (None: as they are), as one change."""
        until = f", until {expires_on:%Y-%m-%d}" if expires_on else ""
        off = " and ".join(name for name, right in (("downloads", can_download), ("uploads", can_upload))
                           if right is False)
        services = self.controller.services
        self.act(lambda: services.change_user(user.id, actor_name=ACTOR, role=role, expires_at=expires_on,
                                              can_download=can_download, can_upload=can_upload),
                 f"{user.username} is now {'an' if role == 'admin' else 'a'} {role}{until}"
                 f"{f'; {off} turned off' if off else ''}.")

    def toggle_active(self) -> None:
        if user := self.selected():
            verb = "disabled and signed out everywhere" if user.is_active else "enabled"
            self._change(user, f"{user.username} is {verb}.", is_active=not user.is_active)

    def delete_user(self) -> None:
        user = self.selected()
        if user is None or not confirm(self, "Delete user", f"Delete {user.username}'s account? They are "
                                       "signed out everywhere; their watch history goes too.", "Delete"):
            return
        users = self.controller.services.users
        self.act(lambda: users.delete(user.id, actor=ACTOR), f"Deleted {user.username}.")
