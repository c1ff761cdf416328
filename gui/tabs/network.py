"""Network: port, allowed networks, VPN subnet, mDNS (from the settings declaration), and the certificate."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QPushButton, QVBoxLayout

from gui.controller import VaultController
from gui.settings_form import SettingsForm
from gui.tabs import Tab, confirm, when
from vaultserver.runtime import CertificateDetails


class NetworkTab(Tab):
    title = "Network"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.form = SettingsForm(controller, "network")
        settings_box = QGroupBox("Who can connect, and where")
        box_layout = QVBoxLayout(settings_box)
        box_layout.addWidget(QLabel("Allowed networks and the VPN subnet apply at once. A new port or listen "
                                    "address restarts the server; open pages reconnect by themselves."))
        box_layout.addWidget(self.form)
        self.subject = QLabel()
        self.names = QLabel()
        self.names.setWordWrap(True)
        self.expires = QLabel()
        self.fingerprint = QLabel()
        self.fingerprint.setWordWrap(True)
        self.ca_notice = QLabel()  # a replaced authority: devices must trust the new one
        self.ca_notice.setWordWrap(True)
        self.ca_notice.setStyleSheet("color: #b45309;")
        self.ca_notice.hide()
        for label in (self.subject, self.names, self.fingerprint):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.regenerate_button = QPushButton("Issue a New Certificate…")
        self.regenerate_button.clicked.connect(self.regenerate)
        cert_box = QGroupBox("HTTPS certificate")
        cert = QFormLayout(cert_box)
        cert.addRow("Issued to", self.subject)
        cert.addRow("Names", self.names)
        cert.addRow("Valid until", self.expires)
        cert.addRow("SHA-256", self.fingerprint)
        cert.addRow("", self.ca_notice)
        cert.addRow("", self.regenerate_button)
        layout = QVBoxLayout(self)
        layout.addWidget(settings_box)
        layout.addWidget(cert_box)
        layout.addWidget(self.notice)
        layout.addStretch(1)
        controller.message.connect(self.say)

    def refresh(self) -> None:
        self.load(self.controller.certificate, self._show)

    def _show(self, info: CertificateDetails) -> None:
        self.subject.setText(f"{info.subject} (by {info.issuer})")
        self.names.setText(", ".join(info.names))
        self.expires.setText(when(info.not_after))
        self.fingerprint.setText(info.sha256)
        self.ca_notice.setText(info.ca_notice or "")
        self.ca_notice.setVisible(bool(info.ca_notice))

    def regenerate(self) -> None:
        if not confirm(self, "New certificate", "Issue a new server certificate for this Mac's current names "
                       "and addresses? The server restarts. Devices that trusted Vault's own authority keep "
                       "trusting it.", "Issue"):
            return
        self.say("Issuing a new certificate and restarting the server…")
        self.controller.run(self.controller.reissue_certificate, self._reissued, self.fail)

    def _reissued(self, info: CertificateDetails) -> None:
        self._show(info)
        self.say("New certificate in use.")
