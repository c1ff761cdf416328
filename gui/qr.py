"""A QR code of Vault's address, so a phone's camera opens the gallery without typing a URL."""

from __future__ import annotations

import io

import segno
from PySide6.QtGui import QPixmap


def phone_url(urls: list[str]) -> str:
    """The address a phone on the LAN can reach: a LAN name or address, never this Mac's localhost."""
    return next((u for u in urls if "//localhost:" not in u), "")


def qr_pixmap(url: str, scale: int = 5) -> QPixmap:
    """Black on white with a quiet zone, as camera apps expect; an empty pixmap for no URL."""
    pixmap = QPixmap()
    if url:
        png = io.BytesIO()
        segno.make(url, error="m").save(png, kind="png", scale=scale, border=4)
        pixmap.loadFromData(png.getvalue(), "PNG")
    return pixmap
