"""Makes Vault.app's icons from the one drawing of it, resources/web/assets/icon.svg.

Writes packaging/icon-1024.png and packaging/Vault.icns, both committed, so a build needs neither this
script nor a Mac. A browser draws the SVG, once per size so small sizes stay sharp: Pillow cannot read SVG,
and Qt's SVG renderer ignores the drawing's clip path. It is the Chromium and Playwright the browser tests
use (`apt-get install chromium`). Pillow writes the files; its ICNS writer stores PNG images (32 to 1024 px),
which macOS reads. The drawing sits on Apple's icon grid, 824 px of a 1024 px canvas, so it lines up with
the other icons in Finder and Launchpad.

    .venv/bin/python packaging/make_icons.py                        # icon-1024.png and Vault.icns
    .venv/bin/python packaging/make_icons.py --iconset DIR.iconset  # also the PNGs iconutil wants (README)
"""

from __future__ import annotations

import argparse
import base64
import io
import sys
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "resources" / "web" / "assets" / "icon.svg"
SIZES = (16, 32, 64, 128, 256, 512, 1024)
ARTWORK = 824 / 1024  # Apple's macOS app icon grid
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def render_all(svg: Path, sizes: tuple[int, ...]) -> dict[int, Image.Image]:
    """The drawing at each size in px, centred on a transparent square canvas."""
    from playwright.sync_api import sync_playwright

    source = "data:image/svg+xml;base64," + base64.b64encode(svg.read_bytes()).decode()
    images = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": max(sizes), "height": max(sizes)})
        for size in sizes:
            side, margin = size * ARTWORK, size * (1 - ARTWORK) / 2
            page.set_content(f'<body style="margin:0;background:transparent">'
                             f'<img src="{source}" style="position:absolute;left:{margin}px;top:{margin}px;'
                             f'width:{side}px;height:{side}px"></body>')
            page.wait_for_function("document.images[0].complete")
            png = page.screenshot(omit_background=True, clip={"x": 0, "y": 0, "width": size, "height": size})
            images[size] = Image.open(io.BytesIO(png)).convert("RGBA")
        browser.close()
    return images


def write_iconset(images: dict[int, Image.Image], folder: Path) -> None:
    """The file names `iconutil -c icns` expects: each point size at 1x and 2x."""
    folder.mkdir(parents=True, exist_ok=True)
    for points in (16, 32, 128, 256, 512):
        images[points].save(folder / f"icon_{points}x{points}.png")
        images[points * 2].save(folder / f"icon_{points}x{points}@2x.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iconset", type=Path, help="also write an .iconset folder for iconutil")
    args = parser.parse_args(argv)
    images = render_all(SOURCE, SIZES)
    images[1024].save(HERE / "icon-1024.png", optimize=True)
    images[1024].save(HERE / "Vault.icns", append_images=[images[s] for s in SIZES if s != 1024])
    written = [HERE / "icon-1024.png", HERE / "Vault.icns"]
    if args.iconset:
        write_iconset(images, args.iconset)
        written.append(args.iconset)
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
