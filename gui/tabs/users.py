"""Users: add family members, reset a password, change a role, disable or delete an account."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
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


class UserDialog(QDialog):
    """A new account (name, role, password) or a new password for an existing one."""

    def __init__(self, parent: QWidget | None, username: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"New password for {username}" if username else "Add a user")
        self.name = QLineEdit(username or "")
        self.name.setEnabled(username is None)
        self.role = QComboBox()
        self.role.addItem("Member (sees the whole library)", "member")
        self.role.addItem("Admin (also manages Vault)", "admin")
        self.password = PasswordField()
        form = QFormLayout()
        if username is None:
            form.addRow("Name", self.name)
            form.addRow("Role", self.role)
        buttons = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(buttons.Ok | buttons.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.password)
        layout.addWidget(self.buttons)
        self.password.changed.connect(self._check)
        self.name.textChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        ok = self.password.acceptable and len(self.name.text().strip()) >= 2
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)


class UsersTab(Tab):
    title = "Users"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.table = make_table(["Name", "Role", "Status", "Last sign-in", "Created"])
        self.table.setAccessibleName("users")
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.add_button = QPushButton("Add…")
        self.add_button.clicked.connect(self.add_user)
        self.password_button = QPushButton("Reset Password…")
        self.password_button.clicked.connect(self.reset_password)
        self.role_button = QPushButton("Make Admin")
        self.role_button.clicked.connect(self.toggle_role)
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
        layout.addWidget(QLabel("Everyone who may sign in to the gallery. Disabling an account or setting a "
                                "new password signs it out on every device."))
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        self.users: dict[str, UserView] = {}
        self._selection_changed()

    def refresh(self) -> None:
        self.load(self.controller.services.users.list, self._show)

    def _show(self, users: list[UserView]) -> None:
        self.users = {u.id: u for u in users}
        fill_table(self.table, [(u.username, u.role, "active" if u.is_active else "disabled",
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
            self.role_button.setText("Make Member" if user.role == "admin" else "Make Admin")
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
        name, role, password = dialog.name.text().strip(), dialog.role.currentData(), dialog.password.text()
        self.create_user(name, password, role)

    def create_user(self, name: str, password: str, role: str) -> None:
        users = self.controller.services.users
        self.act(lambda: users.create(name, password, role, actor=ACTOR), f"Added {name}.")

    def reset_password(self) -> None:
        user = self.selected()
        if user is None:
            return
        dialog = UserDialog(self, user.username)
        if dialog.exec():
            self._change(user, f"New password set for {user.username}; their devices were signed out.",
                         password=dialog.password.text())

    def toggle_role(self) -> None:
        if user := self.selected():
            role = "member" if user.role == "admin" else "admin"
            self._change(user, f"{user.username} is now {'an admin' if role == 'admin' else 'a member'}.",
                         role=role)

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
