"""Activity: the audit log, newest first, filtered by event or user, paged by cursor, exported as CSV."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
)

from gui.controller import VaultController
from gui.tabs import Tab, make_table, when
from vaultserver.services.audit import AuditEntry

PAGE = 200


class ActivityTab(Tab):
    title = "Activity"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.event_choice = QComboBox()
        self.event_choice.addItem("All events", "")
        self.event_choice.currentIndexChanged.connect(self.refresh)
        self.user = QLineEdit(placeholderText="User name")
        self.user.returnPressed.connect(self.refresh)
        self.table = make_table(["Time", "Event", "Outcome", "User", "Address", "Item", "Details"])
        self.table.setAccessibleName("activity")
        self.more_button = QPushButton("Load More")
        self.more_button.clicked.connect(self.load_more)
        export = QPushButton("Export CSV…")
        export.clicked.connect(self.choose_export)
        top = QHBoxLayout()
        top.addWidget(self.event_choice)
        top.addWidget(self.user, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.notice, 1)
        bottom.addWidget(self.more_button)
        bottom.addWidget(export)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        self.entries: list[AuditEntry] = []

    def _filters(self) -> tuple[str | None, str | None]:
        return self.event_choice.currentData() or None, self.user.text().strip() or None

    def refresh(self) -> None:
        self.entries = []
        self.table.setRowCount(0)
        self.load_more()
        self.controller.run(self.controller.services.audit.event_names, self._show_events)

    def _show_events(self, names: list[str]) -> None:
        known = {self.event_choice.itemData(i) for i in range(self.event_choice.count())}
        for name in names:
            if name not in known:
                self.event_choice.addItem(name.replace("_", " "), name)

    def load_more(self) -> None:
        event, user = self._filters()
        before = self.entries[-1].id if self.entries else None
        audit = self.controller.services.audit
        # A newer load (a new filter, or a refresh) makes any page still on its way for the old one drop.
        self.load(lambda: audit.page(limit=PAGE, before_id=before, event=event, username=user), self._add)

    def _add(self, entries: list[AuditEntry]) -> None:
        start = len(self.entries)
        self.entries += entries
        self.table.setRowCount(len(self.entries))
        for row, e in enumerate(entries, start):
            details = ", ".join(f"{k}={v}" for k, v in e.details.items())
            for col, value in enumerate((when(e.timestamp), e.event, e.outcome, e.username, e.ip_address,
                                         e.resource, details)):
                self.table.setItem(row, col, QTableWidgetItem(value or ""))
        self.more_button.setEnabled(len(entries) == PAGE)
        self.say(f"{len(self.entries)} entr{'y' if len(self.entries) == 1 else 'ies'} shown")

    def choose_export(self) -> None:
        suggested = str(Path.home() / "vault-activity.csv")
        name, _ = QFileDialog.getSaveFileName(self, "Export the activity log", suggested, "CSV (*.csv)")
        if name:
            self.export(Path(name))

    def export(self, dest: Path) -> None:
        event, user = self._filters()
        audit = self.controller.services.audit
        self.controller.run(lambda: audit.export_csv(dest, event=event, username=user),
                            lambda n: self.say(f"Exported {n} entries to {dest}."), self.fail)
