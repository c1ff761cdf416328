"""PySide6.QtGui for Vault: PyInstaller's own hook, minus the Qt plugins a menu-bar app never loads.

The stock hook collects every plugin of every type QtGui can use, and with them whatever they link: the GTK 3
theme brings GTK, Cairo and Pango; the virtual keyboard brings QtQuick and QtQml; the PDF image format brings
QtPdf; the Wayland and embedded (EGLFS, framebuffer, VNC) platforms bring their own libraries. Dropping the
plugins here, before PyInstaller follows their links, keeps all of that out of the bundle. build_app.spec
names this folder in `hookspath`, whose hooks take precedence over the stock ones.

Kept: the platforms Vault runs on (cocoa on macOS, xcb on Linux desktops, offscreen and minimal for
headless runs and the self-check), the SVG icon engine, the image formats the GUI may show (PNG is built in;
SVG, WebP, JPEG, GIF, ICO, ICNS), input methods for text fields, and the XDG portal theme.
"""

from pathlib import PurePath

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

DROPPED_TYPES = {"egldeviceintegrations", "generic", "wayland-decoration-client",
                 "wayland-graphics-integration-client", "wayland-shell-integration"}
DROPPED_NAMES = ("qeglfs", "qlinuxfb", "qminimalegl", "qvkkhrdisplay", "qvnc", "qwayland",  # platforms
                 "qgtk3",  # platformthemes
                 "qtvirtualkeyboardplugin",  # platforminputcontexts
                 "qpdf", "qtga", "qtiff", "qwbmp")  # imageformats


def wanted(source: str, destination: str) -> bool:
    parts = PurePath(destination).parts
    if "plugins" not in parts:
        return True
    plugin_type = parts[parts.index("plugins") + 1] if len(parts) > parts.index("plugins") + 1 else ""
    name = PurePath(source).name.removeprefix("lib")
    return plugin_type not in DROPPED_TYPES and not name.startswith(DROPPED_NAMES)


hiddenimports, binaries, datas = add_qt6_dependencies(__file__)
binaries = [(source, destination) for source, destination in binaries if wanted(source, destination)]
