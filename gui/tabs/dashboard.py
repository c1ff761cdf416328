"""Dashboard: is Vault serving, where, who is watching, what is being imported, how much disk it uses, and
when the last good backup was made."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
)

from gui.backups import backup_line
from gui.controller import Status, VaultController
from gui.qr import phone_url, qr_pixmap
from gui.tabs import Tab, make_table, size
from gui.tray import choose_and_import, gallery_url, open_url
from vaultserver.runtime import BackupState

WARNING = "color: #b45309; font-weight: 600"
STAGES = {"queued": "Waiting", "processing": "Converting", "done": "Added",
          "duplicate": "Already in the library", "failed": "Failed (moved to the failed folder)",
          "gone": "File disappeared"}


class DashboardTab(Tab):
    title = "Dashboard"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.state = QLabel()
        self.state.setStyleSheet("font-size: 18px; font-weight: 600")
        self.urls = QLabel()
        self.urls.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.qr = QLabel()
        self.qr.setAccessibleName("QR code of the address")
        self._qr_url: str | None = None
        self.viewers = QLabel()
        self.disk = QLabel()
        self.backup = QLabel()
        self.backup.setWordWrap(True)
        self.backup.setAccessibleName("Backup")
        self.queue_summary = QLabel()
        self.queue = make_table(["File", "Status", "Progress"])
        self.queue.setAccessibleName("queue")
        self.gallery = QPushButton("Open Gallery")
        self.gallery.clicked.connect(lambda: open_url(gallery_url(controller.status.urls)))
        self.pause = QPushButton("Pause Processing")
        self.pause.clicked.connect(controller.toggle_pause)
        self.server = QPushButton("Stop Server")
        self.server.clicked.connect(controller.toggle_server)
        add = QPushButton("Import Files…")
        add.clicked.connect(lambda: choose_and_import(controller, self))
        facts = QFormLayout()
        facts.addRow("Open on a phone", self.urls)
        facts.addRow("Viewers", self.viewers)
        facts.addRow("Library", self.disk)
        facts.addRow("Backup", self.backup)
        buttons = QHBoxLayout()
        for button in (self.gallery, add, self.pause, self.server):
            buttons.addWidget(button)
        buttons.addStretch(1)
        top = QHBoxLayout()
        top.addLayout(facts, 1)
        top.addWidget(self.qr)
        layout = QVBoxLayout(self)
        layout.addWidget(self.state)
        layout.addLayout(top)
        layout.addLayout(buttons)
        layout.addWidget(self.queue_summary)
        layout.addWidget(self.queue, 1)
        layout.addWidget(self.notice)
        controller.status_changed.connect(self.show_status)
        controller.message.connect(self.say)
        controller.backup_changed.connect(self.show_backup)
        self.show_status(controller.status)

    def show_backup(self, state: BackupState) -> None:
        self.backup.setText(backup_line(state))
        self.backup.setStyleSheet(WARNING if state.warning else "")

    def show_status(self, status: Status) -> None:
        self.state.setText(status.state_line)
        self.show_backup(self.controller.backup_state())  # in memory; and "3 days ago" ages as time passes
        self.urls.setText("<br>".join(status.urls) or "Not serving")
        url = phone_url(status.urls)
        if url != self._qr_url:
            self._qr_url = url
            self.qr.setPixmap(qr_pixmap(url, scale=3))
            self.qr.setToolTip(url)
            self.qr.setVisible(bool(url))
        online = ", ".join(status.viewers_online) or "nobody right now"
        self.viewers.setText(f"{status.devices_signed_in} device(s) signed in; watching now: {online}")
        if status.usage:
            u = status.usage
            self.disk.setText(f"{u.items} item(s), {size(u.stored_bytes)} encrypted; "
                              f"{size(u.free_bytes)} free")
        self.pause.setText(status.pause_label)
        self.server.setText(status.server_label)
        self.gallery.setEnabled(bool(status.urls))
        c = status.counts
        self.queue_summary.setText(f"Import queue: {c.queued} waiting, {c.processing} converting, "
                                   f"{c.done} added, {c.failed} failed")
        self._show_jobs(status)

    def _show_jobs(self, status: Status) -> None:
        jobs = status.jobs
        self.queue.setRowCount(len(jobs))
        for row, job in enumerate(jobs):
            name = self.queue.item(row, 0)
            if name is None or name.text() != job.original_name:
                self.queue.setItem(row, 0, QTableWidgetItem(job.original_name))
            label = STAGES.get(job.status, job.status)
            if job.status == "processing":  # as the gallery's tile says it, and what it is doing now
                label = f"{label} {int(job.progress * 100)}%" + (f" ({job.stage})" if job.stage else "")
            elif job.status == "failed" and job.error:
                label = f"{label}: {job.error}"
            self.queue.setItem(row, 1, QTableWidgetItem(label))
            bar = self.queue.cellWidget(row, 2)
            if not isinstance(bar, QProgressBar):
                bar = QProgressBar()
                bar.setRange(0, 100)
                self.queue.setCellWidget(row, 2, bar)
            bar.setValue(100 if job.status in ("done", "duplicate") else int(job.progress * 100))
