"""What Vault.app tells macOS about itself (Info.plist), declared once and imported by build_app.spec.

Name, version and identifier come from the package, so the bundle can never disagree with the code. The
keys below are the ones macOS acts on for a menu-bar server:
- LSUIElement: no Dock icon and no app menu; Vault lives in the menu bar only.
- NSLocalNetworkUsageDescription and NSBonjourServices: since macOS 14 an app that advertises a Bonjour
  service or talks to the LAN must declare both, or the system silently blocks the traffic (the owner is
  asked once, with this sentence).
This file is not a Python package on purpose: a `packaging` package would shadow the PyPI one that
PyInstaller and setuptools import. The spec puts this folder on sys.path and imports `bundle_info`.
"""

from __future__ import annotations

from typing import Any

from vaultserver import APP_NAME, __version__
from vaultserver.discovery import SERVICE_TYPE
from vaultserver.login_item import LABEL

BUNDLE_ID = LABEL  # the LaunchAgent that starts Vault at login carries the app's identifier
BONJOUR_SERVICES = [SERVICE_TYPE.removesuffix(".local.")]  # "_https._tcp", what discovery advertises
ICON_PNG = "icon-1024.png"
ICON_ICNS = f"{APP_NAME}.icns"

INFO_PLIST: dict[str, Any] = {
    "CFBundleName": APP_NAME,
    "CFBundleDisplayName": APP_NAME,
    "CFBundleIdentifier": BUNDLE_ID,
    "CFBundleShortVersionString": __version__,
    "CFBundleVersion": __version__,
    "LSUIElement": True,
    "LSApplicationCategoryType": "public.app-category.photography",
    "NSHighResolutionCapable": True,
    "NSLocalNetworkUsageDescription": (
        f"{APP_NAME} serves your photos and videos to the phones, tablets and computers in your home, "
        "and announces itself on the local network so they can find it."
    ),
    "NSBonjourServices": BONJOUR_SERVICES,
    "NSHumanReadableCopyright": f"{APP_NAME} {__version__}, MIT licence",
}
