"""Workers: other machines converting for this Vault. Add one (its join string, to copy), watch what each
converts, revoke one.

The same doors as `vaultserver worker-token`: `Services.add_worker` makes the token and its join string,
`services.workers` lists and revokes. While the tab is shown it follows the controller's status ticks, so
a worker's progress moves without a click.
"""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.controller import VaultController
from gui.tabs import ACTOR, Tab, confirm, fill_table, make_table, selected_key, when
from vaultserver.services.workers import NAME, NAME_RULE, NewWorker, WorkerView


class AddWorkerDialog(QDialog):
    """The new worker's name."""

    def __init__(self, parent: QWidget | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a Worker")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. studio-mac")
        self.name.setMaxLength(40)
        buttons = QDialogButtonBox.StandardButton
        self.buttons = QDialogButtonBox(buttons.Ok | buttons.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Name", self.name)
        rule = QLabel(f"{NAME_RULE}. The machine needs Vault installed and must be on the home network or "
                      "the VPN.")
        rule.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(rule)
        layout.addWidget(self.buttons)
        self.name.textChanged.connect(self._check)
        self._check()

    def _check(self) -> None:
        ok = NAME.fullmatch(self.name.text().strip()) is not None
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)


class JoinStringDialog(QDialog):
    """The join string of a new worker, shown once, with Copy."""

    def __init__(self, parent: QWidget | None, created: NewWorker) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Join string for {created.name}")
        self.text = QPlainTextEdit(created.join_string)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.text.setAccessibleName("join string")
        self.copy_button = QPushButton("Copy")
        self.copy_button.clicked.connect(self.copy)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        explain = QLabel(f"On {created.name}, run <tt>vaultserver worker --join '…'</tt> with this join "
                         "string. It holds the worker's secret: keep it to yourself. Vault shows it only "
                         "now; if it is lost, revoke the worker and add it again.")
        explain.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.copy_button)
        row.addStretch(1)
        row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(explain)
        layout.addWidget(self.text)
        layout.addLayout(row)
        self.resize(560, 260)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())
        self.copy_button.setText("Copied")


def _job(worker: WorkerView) -> str:
    if not worker.job_id:
        return ""
    return f"{worker.job_id[:8]} {worker.stage or ''}".strip()


def _progress(worker: WorkerView) -> str:
    return f"{worker.progress:.0%}" if worker.job_id and worker.progress is not None else ""


class WorkersTab(Tab):
    title = "Workers"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.table = make_table(["Name", "Encoders", "Current job", "Progress", "Last seen", "Address",
                                 "Status"])
        self.table.setAccessibleName("workers")
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.add_button = QPushButton("Add a Worker…")
        self.add_button.clicked.connect(self.add_worker)
        self.revoke_button = QPushButton("Revoke…")
        self.revoke_button.clicked.connect(self.revoke_selected)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        buttons = QHBoxLayout()
        for button in (self.add_button, self.revoke_button, refresh):
            buttons.addWidget(button)
        buttons.addStretch(1)
        intro = QLabel("Other machines (a second Mac, a Linux box with a GPU) that convert for this Vault "
                       "over HTTPS. They get one job's keys at a time, never the master key; revoking one "
                       "refuses its next call, and its job goes back to the queue.")
        intro.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.notice)
        self.workers: dict[str, WorkerView] = {}
        self.join_dialog: JoinStringDialog | None = None
        controller.status_changed.connect(self._tick)
        self._selection_changed()

    def refresh(self) -> None:
        self.load(self.controller.services.workers.list, self._show)

    def _tick(self, _status: object) -> None:
        if self.isVisible():
            self.refresh()

    def _show(self, workers: list[WorkerView]) -> None:
        self.workers = {w.name: w for w in workers}
        fill_table(self.table, [(w.name, ", ".join(w.encoders), _job(w), _progress(w),
                                 when(w.last_seen_at) or "never", w.address or "",
                                 "revoked" if w.revoked else "active") for w in workers],
                   [w.name for w in workers])
        self._selection_changed()

    def selected(self) -> WorkerView | None:
        key = selected_key(self.table)
        return self.workers.get(key) if key is not None else None

    def _selection_changed(self) -> None:
        worker = self.selected()
        self.revoke_button.setEnabled(worker is not None and not worker.revoked)

    def add_worker(self) -> None:
        dialog = AddWorkerDialog(self)
        if dialog.exec():
            self.create_worker(dialog.name.text().strip())

    def create_worker(self, name: str) -> None:
        """Make the token off the UI thread, then show its join string (`join_dialog`)."""
        services = self.controller.services

        def done(created: NewWorker) -> None:
            self.say(f"Added {created.name}: copy its join string to that machine.")
            self.refresh()
            self.join_dialog = JoinStringDialog(self, created)
            self.join_dialog.open()

        self.controller.run(lambda: services.add_worker(name, actor=ACTOR), done, self.fail)

    def revoke_selected(self) -> None:
        worker = self.selected()
        if worker is None or not confirm(self, "Revoke worker", f"Revoke {worker.name}? Its next call is "
                                         "refused; what it converts now goes back to the queue.", "Revoke"):
            return
        self.revoke(worker.name)

    def revoke(self, name: str) -> None:
        services = self.controller.services
        self.act(lambda: services.revoke_worker(name, actor=ACTOR), f"Revoked {name}.")
