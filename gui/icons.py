"""Vault's icons: the app icon, and the menu-bar icon with a badge for each state."""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

from vaultserver.config import resource_path

BADGES = {  # state -> badge colour; "running" has none: the plain icon means all is well
    "processing": "#2563eb",
    "paused": "#f59e0b",
    "stopped": "#6b7280",
    "error": "#dc2626",
}
SIZE = 64


@cache
def app_pixmap(size: int = SIZE) -> QPixmap:
    pixmap = QPixmap(str(resource_path("web", "assets", "icon-512.png")))
    if pixmap.isNull():  # never expected in a proper install; a plain square beats an invisible icon
        pixmap = QPixmap(size, size)
        pixmap.fill(QColor("#4f46e5"))
    return pixmap.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)


def app_icon() -> QIcon:
    return QIcon(app_pixmap(256))


@cache
def state_pixmap(state: str) -> QPixmap:
    pixmap = QPixmap(app_pixmap(SIZE))
    colour = BADGES.get(state)
    if colour:
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("white"), 4))
        painter.setBrush(QColor(colour))
        painter.drawEllipse(QRectF(SIZE * 0.52, SIZE * 0.52, SIZE * 0.44, SIZE * 0.44))
        painter.end()
    return pixmap


def state_icon(state: str) -> QIcon:
    return QIcon(state_pixmap(state))
