"""A new-password field with the password policy shown live, rule by rule (wizard and Users tab)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget

from vaultserver.services.users import POLICY, password_problems

MET, UNMET = "✓", "•"


class PasswordField(QWidget):
    """Password + confirmation; `acceptable` says whether the service will take it (same rules, same code)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.password = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="New password")
        self.confirm = QLineEdit(echoMode=QLineEdit.EchoMode.Password, placeholderText="The same again")
        self.password.setAccessibleName("Password")
        self.confirm.setAccessibleName("Confirm password")
        self.rules = {rule: QLabel() for rule, _ in POLICY}
        self.mismatch = QLabel("The two passwords differ")
        self.mismatch.setStyleSheet("color: #b91c1c")
        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Password", self.password)
        form.addRow("Confirm", self.confirm)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(QLabel("The password needs:"))
        for label in self.rules.values():
            layout.addWidget(label)
        layout.addWidget(self.mismatch)
        self.password.textChanged.connect(self._update)
        self.confirm.textChanged.connect(self._update)
        self._update()

    def text(self) -> str:
        return self.password.text()

    @property
    def acceptable(self) -> bool:
        return not password_problems(self.text()) and self.text() == self.confirm.text()

    def clear(self) -> None:
        self.password.clear()
        self.confirm.clear()

    def _update(self) -> None:
        unmet = set(password_problems(self.text()))
        for rule, label in self.rules.items():
            ok = rule not in unmet
            label.setText(f"{MET if ok else UNMET} {rule}")
            label.setStyleSheet("color: #15803d" if ok else "color: #6b7280")
        self.mismatch.setVisible(bool(self.confirm.text()) and self.confirm.text() != self.text())
        self.changed.emit()
