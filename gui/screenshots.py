"""`python -m gui --screenshot DIR`: every admin tab and wizard page, rendered offscreen with sample data.

The sample library is made of a few generated pictures run through the real pipeline, and two viewers
signed in on made-up devices, so the pictures show what an owner really sees. It is backed up for real, and
the wizard's restore pages restore that backup into a second, new data folder.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw
from PySide6.QtWidgets import QApplication, QWidget

from gui.app import VaultApp, qt_application, wait_until
from gui.controller import VaultController
from gui.wizard import PAGES, FirstRunWizard
from vaultserver.backup.writer import back_up
from vaultserver.config import AppPaths

SCENES = [("Beach.jpg", "#38bdf8", "#fde68a"), ("Dunes.jpg", "#fb923c", "#fef3c7"),
          ("Evening.jpg", "#6d28d9", "#fcd34d"), ("Meadow.jpg", "#60a5fa", "#86efac")]


def _picture(path: Path, sky: str, ground: str) -> None:
    image = Image.new("RGB", (1200, 800), sky)
    draw = ImageDraw.Draw(image)
    draw.ellipse((780, 120, 960, 300), fill="#fff7d6")
    draw.polygon([(0, 560), (300, 470), (700, 540), (1200, 450), (1200, 800), (0, 800)], fill=ground)
    image.save(path, quality=90)


def _settle(app: QApplication, controller: VaultController, seconds: float = 0.8) -> None:
    """Let background reloads land before taking the picture."""
    controller.tasks.wait(10_000)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
    controller.tasks.wait(10_000)
    app.processEvents()


def _save(widget: QWidget, path: Path) -> None:
    widget.grab().save(str(path))
    print(path)


def _type_back_the_recovery_key(wizard: FirstRunWizard) -> None:
    """On the check page, the owner's answer: the words the page before showed."""
    if wizard.currentPage() is not wizard.recovery_check:
        return
    words = wizard.recovery_key.words.shown_words()
    check = wizard.recovery_check.check
    for entry, position in zip(check.entries, check.positions, strict=True):
        entry.setText(words[position - 1])


def render_all(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    app = qt_application()  # the one `gui.launch` made
    with tempfile.TemporaryDirectory(prefix="vault-shots-") as tmp:
        paths = AppPaths.scratch(Path(tmp))
        controller = VaultController(paths, host="127.0.0.1", port=0)
        wizard = FirstRunWizard(controller)
        wizard.account.name.setText("owner")
        wizard.account.password.password.setText("Correct-h0rse")
        wizard.resize(640, 520)
        wizard.show()
        number, phrase = 1, ""
        while True:  # the new library's way, to its last page
            _settle(app, controller, 0.2)
            _save(wizard, out / f"wizard-{number}.png")
            if wizard.currentId() == PAGES["ready"]:
                break
            phrase = phrase or wizard.recovery_key.words.phrase
            wizard.account.password.confirm.setText("Correct-h0rse")
            _type_back_the_recovery_key(wizard)
            wizard.next()
            number += 1
        wizard.hide()

        services = controller.services
        owner = services.users.create("owner", "Correct-h0rse", "admin")
        for name, device in (("grandma", "Safari on iPhone"), ("sam", "Chrome on Android")):
            user = services.users.create(name, "Correct-h0rse", "member")
            services.sessions.create(user, device_name=device, ip="192.168.1.23")
        services.sessions.create(owner, device_name="Safari on Mac", ip="127.0.0.1")
        pictures = Path(tmp) / "pictures"
        pictures.mkdir()
        for name, sky, ground in SCENES:
            _picture(pictures / name, sky, ground)
        controller.import_files(sorted(pictures.iterdir()))
        controller.tasks.wait(30_000)
        vault = VaultApp(controller, use_tray=False)
        vault.begin()
        wait_until(lambda: controller.status.server, 60, "the server")
        wait_until(lambda: len(services.library.all_items()) == len(SCENES), 120, "the sample pictures")
        backup = Path(tmp) / "Backup Disk" / "Vault Backup"
        backup.parent.mkdir()
        back_up(services, backup)
        services.settings.update(backup_dir=str(backup))
        controller.refresh()
        window = vault.window
        window.resize(960, 640)
        for title in window.pages:
            window.show_tab(title)
            _settle(app, controller)
            _save(window, out / f"admin-{title.lower()}.png")
        _render_restore(app, backup, phrase, Path(tmp) / "new-mac", out)
        vault.quit()
    return 0


def _render_restore(app: QApplication, backup: Path, phrase: str, root: Path, out: Path) -> None:
    """The wizard's other way in, on a new data folder: the backup folder, the recovery key, the result."""
    controller = VaultController(AppPaths.scratch(root), host="127.0.0.1", port=0)
    wizard = FirstRunWizard(controller)
    wizard.resize(640, 520)
    wizard.show()
    wizard.account.restore.setChecked(True)
    wizard.next()
    wizard.restore_folder.folder.setText(str(backup))
    wizard.restore_folder.look()
    wait_until(wizard.restore_folder.isComplete, 30, "the backup's snapshots")
    _settle(app, controller, 0.2)
    _save(wizard, out / "wizard-restore-1.png")
    wizard.next()
    wizard.restore_key.entry.text.setPlainText(phrase)
    wait_until(wizard.restore_key.isComplete, 30, "the recovery key to open the backup")
    _settle(app, controller, 0.2)
    _save(wizard, out / "wizard-restore-2.png")
    wizard.next()
    wait_until(wizard.restore.isComplete, 120, "the restore")
    _settle(app, controller, 0.2)
    _save(wizard, out / "wizard-restore-3.png")
    wizard.hide()
    controller.shutdown()
