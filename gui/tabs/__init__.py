"""The admin window's tabs, one module each, plus the small pieces they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from gui.controller import VaultController

ACTOR = "owner (Vault app)"  # who the audit log names for changes made here


class Tab(QWidget):
    """A tab reloads what it shows when it comes into view (`refresh`), off the UI thread."""

    title = ""

    def __init__(self, controller: VaultController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._loads = 0
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setAccessibleName("notice")

    def refresh(self) -> None:
        """Reload from the services; the default has nothing to reload."""

    def say(self, text: str, ok: bool = True) -> None:
        self.notice.setText(text)
        self.notice.setStyleSheet("color: #15803d" if ok else "color: #b91c1c")

    def fail(self, text: str) -> None:
        self.say(text, ok=False)

    def load(self, fn: Callable[[], Any], show: Callable[[Any], None]) -> None:
        """Fetch off the UI thread and show it, unless a newer load started meanwhile: answers can cross,
        and a late answer to an old question must not replace a fresh one."""
        self._loads += 1
        ticket = self._loads

        def answer(result: Any) -> None:
            if ticket == self._loads:
                show(result)

        self.controller.run(fn, answer, self.fail)

    def act(self, fn: Callable[[], Any], said: str | Callable[[Any], str]) -> None:
        """Do a change off the UI thread, then say what happened and reload (or show why it failed)."""
        def done(result: Any) -> None:
            self.say(said(result) if callable(said) else said)
            self.refresh()

        self.controller.run(fn, done, self.fail)


def make_table(headers: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(headers))
    table.setHorizontalHeaderLabels(list(headers))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.setAlternatingRowColors(True)
    return table


def fill_table(table: QTableWidget, rows: Sequence[Sequence[object]], keys: Sequence[str] = ()) -> None:
    """Replace the rows; `keys[i]` (an id) is kept on row i's first cell for `selected_key`, and the row
    selected before stays selected (a periodic refresh must not drop the owner's choice)."""
    selected = selected_key(table)
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = QTableWidgetItem("" if value is None else str(value))
            if c == 0 and r < len(keys):
                item.setData(Qt.ItemDataRole.UserRole, keys[r])
            table.setItem(r, c, item)
    if selected is not None and selected in keys:
        table.selectRow(list(keys).index(selected))


def selected_key(table: QTableWidget) -> str | None:
    """The id `fill_table` kept on the selected row, or None when no row is selected."""
    rows = table.selectionModel().selectedRows()
    if not rows:
        return None
    item = table.item(rows[0].row(), 0)
    key = item.data(Qt.ItemDataRole.UserRole) if item else None
    return key if isinstance(key, str) else None


def when(moment: datetime | None) -> str:
    """A UTC time from the database, in the owner's local time."""
    if moment is None:
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone().strftime("%Y-%m-%d %H:%M")


def size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def confirm(parent: QWidget, title: str, text: str, action: str) -> bool:
    box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Cancel, parent)
    button = box.addButton(action, QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is button
