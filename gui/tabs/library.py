"""Library: every item with its thumbnail (decrypted in memory, never written out), search, a filter by
album, and delete."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from gui.controller import VaultController
from gui.tabs import ACTOR, Tab, confirm, size, when
from vaultserver.services.albums import AlbumView
from vaultserver.services.items import MediaItem, Page

PAGE = 200
THUMB = 120


def _caption(item: MediaItem) -> str:
    kind = f"{int(item.duration // 60)}:{int(item.duration % 60):02d}" if item.duration else "photo"
    return f"{item.original_name}\n{kind} · {size(item.size)}"


class LibraryTab(Tab):
    title = "Library"

    def __init__(self, controller: VaultController) -> None:
        super().__init__(controller)
        self.search = QLineEdit(placeholderText="Search by name")
        self.search.returnPressed.connect(self.refresh)
        self.kind = QComboBox()
        for label, value in (("All", "all"), ("Photos", "image"), ("Videos", "video")):
            self.kind.addItem(label, value)
        self.kind.currentIndexChanged.connect(self.refresh)
        self.album = QComboBox()
        self.album.setAccessibleName("album")
        self.album.addItem("All items", None)
        self.album.currentIndexChanged.connect(self.refresh)
        self.items = QListWidget()
        self.items.setAccessibleName("library")
        self.items.setViewMode(QListWidget.ViewMode.IconMode)
        self.items.setIconSize(QSize(THUMB, THUMB))
        self.items.setGridSize(QSize(THUMB + 60, THUMB + 56))
        self.items.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.items.setWordWrap(True)
        self.items.setMovement(QListWidget.Movement.Static)
        self.items.itemSelectionChanged.connect(self._selected)
        self.more_button = QPushButton("Show More")
        self.more_button.setVisible(False)
        self.more_button.clicked.connect(self.show_more)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setEnabled(False)
        self.delete_button.clicked.connect(self.delete_selected)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.kind)
        top.addWidget(self.album)
        bottom = QHBoxLayout()
        bottom.addWidget(self.notice, 1)
        bottom.addWidget(self.more_button)
        bottom.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.items, 1)
        layout.addLayout(bottom)
        self._generation = 0  # a newer listing makes late thumbnails of an older one go away
        self._page = 1
        controller.library_changed.connect(self.refresh)

    def refresh(self) -> None:
        self.controller.run(self.controller.services.albums.all, self._show_albums, self.fail)
        self._load(1)

    def _show_albums(self, albums: list[AlbumView]) -> None:
        """Refill the album chooser, keeping the chosen album (if it still exists) without reloading."""
        chosen = self.album.currentData()
        self.album.blockSignals(True)
        self.album.clear()
        self.album.addItem("All items", None)
        for album in sorted(albums, key=lambda a: a.name.lower()):
            self.album.addItem(f"{album.name} ({album.owner}, {album.item_count})", album.id)
        found = self.album.findData(chosen) if chosen else 0
        self.album.setCurrentIndex(max(found, 0))
        self.album.blockSignals(False)
        if chosen and found < 0:  # the album went away: show everything again
            self._load(1)

    def show_more(self) -> None:
        self._load(self._page + 1)

    def _load(self, number: int) -> None:
        library = self.controller.services.library
        query, kind = self.search.text().strip() or None, self.kind.currentData()
        album = self.album.currentData()
        self.load(lambda: library.list(media_type=kind, q=query, album=album, page=number, limit=PAGE),
                  self._show)

    def _show(self, page: Page) -> None:
        if page.page == 1:
            self._generation += 1
            self.items.clear()
        self._page = page.page
        for media in page.items:
            entry = QListWidgetItem(_caption(media))
            entry.setData(Qt.ItemDataRole.UserRole, media)
            entry.setToolTip(f"{media.original_name}\n{media.width}×{media.height}\n"
                             f"Taken {when(media.taken_at)}\nAdded {when(media.created_at)}")
            self.items.addItem(entry)
        shown = self.items.count()
        self.say(f"{shown} of {page.total} items" if shown < page.total else f"{page.total} item(s)")
        self.more_button.setVisible(shown < page.total)
        self._load_thumbnails(self._generation, [m.id for m in page.items])

    def _load_thumbnails(self, generation: int, ids: list[str]) -> None:
        library = self.controller.services.library

        def read() -> list[tuple[str, QImage]]:
            images = []
            for media_id in ids:
                try:
                    data = library.read(media_id, "thumb.vlt")
                except Exception:  # a missing thumbnail shows the caption alone
                    continue
                image = QImage.fromData(data)
                if not image.isNull():
                    images.append((media_id, image))
            return images

        self.controller.run(read, lambda images: self._set_thumbnails(generation, images))

    def _set_thumbnails(self, generation: int, images: list[tuple[str, QImage]]) -> None:
        if generation != self._generation:
            return
        by_id = dict(images)
        for row in range(self.items.count()):
            entry = self.items.item(row)
            image = by_id.get(entry.data(Qt.ItemDataRole.UserRole).id)
            if image is not None:
                entry.setIcon(QIcon(QPixmap.fromImage(image)))
        self.items.doItemsLayout()

    def selected(self) -> MediaItem | None:
        chosen = self.items.selectedItems()
        return chosen[0].data(Qt.ItemDataRole.UserRole) if chosen else None

    def _selected(self) -> None:
        self.delete_button.setEnabled(self.selected() is not None)

    def delete_selected(self) -> None:
        media = self.selected()
        if media is None or not confirm(self, "Delete from Vault",
                                        f"Delete “{media.original_name}” for good? Its encryption keys are "
                                        "destroyed, so it cannot be recovered.", "Delete"):
            return
        library = self.controller.services.library
        self.act(lambda: library.delete(media.id, actor=ACTOR), f"Deleted {media.original_name}.")
