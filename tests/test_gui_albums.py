"""The admin window's Library tab filters by album: real app controller, real pipeline, real albums."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")

from tests.conftest import VIEWER  # noqa: E402
from vaultserver.services.principal import Principal  # noqa: E402


def test_library_tab_shows_one_albums_items_when_that_album_is_chosen(qtbot, controller, window, services,
                                                                     media):
    for name in ("beach.jpg", "garden.jpg"):
        media.copy_into(media.image(name, size=(300 + len(name), 200)), controller.import_folder)
    qtbot.waitUntil(lambda: len(services.library.all_items()) == 2, timeout=60_000)
    owner = services.users.by_name(VIEWER)
    who = Principal(owner.id, owner.username, owner.role, "s1")
    beach = next(item for item in services.library.all_items() if item.original_name == "beach.jpg")
    album = services.albums.create(who, "Holiday")
    services.albums.add_items(who, album.id, [beach.id])
    page = window.show_tab("Library")
    qtbot.waitUntil(lambda: page.items.count() == 2 and page.album.count() == 2, timeout=30_000)
    assert page.album.itemText(1) == f"Holiday ({VIEWER}, 1)"
    page.album.setCurrentIndex(1)
    qtbot.waitUntil(lambda: page.items.count() == 1, timeout=30_000)
    assert page.items.item(0).data(256).original_name == "beach.jpg"
    page.album.setCurrentIndex(0)
    qtbot.waitUntil(lambda: page.items.count() == 2, timeout=30_000)
