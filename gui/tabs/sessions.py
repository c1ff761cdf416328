"""Sessions: every signed-in device of every user, and signing one (or all of a user's) out."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from gui.controller import VaultController
from gui.tabs import Tab, fill_table, make_table, selected_key, when
from vaultserver.services.principal import SessionView


class SessionsTab(Tab):
    title = "Sessions"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.table = make_table(["User", "Device", "Address", "Last active", "Signed in", "Expires"])
        self.table.setAccessibleName("sessions")
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.revoke_button = QPushButton("Sign Out Device")
        self.revoke_button.clicked.connect(self.revoke_selected)
        self.revoke_user_button = QPushButton("Sign Out All of This User's Devices")
        self.revoke_user_button.clicked.connect(self.revoke_user)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        for button in (self.revoke_button, self.revoke_user_button, refresh):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Devices signed in now. Signing one out takes effect on its very next "
                                "request, even in the middle of a video."))
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        self.sessions: dict[str, SessionView] = {}
        self._selection_changed()

    def refresh(self) -> None:
        self.load(self.controller.services.sessions.list, self._show)

    def _show(self, sessions: list[SessionView]) -> None:
        self.sessions = {s.id: s for s in sessions}
        fill_table(self.table, [(s.username, s.device_name or s.device_type, s.ip_address,
                                 when(s.last_activity_at), when(s.created_at), when(s.expires_at))
                                for s in sessions], [s.id for s in sessions])
        self._selection_changed()

    def selected(self) -> SessionView | None:
        key = selected_key(self.table)
        return self.sessions.get(key) if key is not None else None

    def _selection_changed(self) -> None:
        chosen = self.selected() is not None
        self.revoke_button.setEnabled(chosen)
        self.revoke_user_button.setEnabled(chosen)

    def revoke_selected(self) -> None:
        if session := self.selected():
            sessions = self.controller.services.sessions
            self.act(lambda: sessions.revoke(session.id, "signed_out_by_admin"),
                     f"Signed out {session.username}'s {session.device_name}.")

    def revoke_user(self) -> None:
        if session := self.selected():
            sessions = self.controller.services.sessions
            self.act(lambda: sessions.revoke_all_for_user(session.user_id, "signed_out_by_admin"),
                     lambda n: f"Signed out {n} device(s) of {session.username}.")
