"""The admin Dashboard while a video converts (pytest-qt, offscreen): its queue row says how far it is the way
the gallery's tile does ("Converting 42%"), with what it is doing now, and its bar agrees. Real services,
server, pipeline and ffmpeg."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("PySide6.QtWidgets", reason="PySide6 is a dependency: `make test` installs it")



def test_the_dashboard_says_how_far_a_converting_video_is(qtbot, window, media):
    controller = window.controller
    page = window.show_tab("Dashboard")
    media.copy_into(media.video(seconds=20, size="1280x720"), controller.import_folder, "trip.mp4")
    shown: list[tuple[str, int]] = []

    def converting_under_way() -> bool:
        if page.queue.rowCount() != 1 or page.queue.item(0, 1) is None:
            return False
        label, bar = page.queue.item(0, 1).text(), page.queue.cellWidget(0, 2).value()
        shown.append((label, bar))
        return bool(re.fullmatch(r"Converting [1-9]\d?% \(transcoding\)", label))

    qtbot.waitUntil(converting_under_way, timeout=120_000)
    label, bar = shown[-1]
    assert label == f"Converting {bar}% (transcoding)"  # the words and the bar say the same
    assert page.queue.item(0, 0).text() == "trip.mp4"
