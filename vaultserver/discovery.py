"""Bonjour/mDNS: advertises Vault as `_https._tcp.local.` so devices on the LAN can find it by name.

The record lists the Mac's current addresses; a background check re-registers it when they change (Wi-Fi
to Ethernet, a new DHCP lease). Owners can switch it off in the network settings.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from zeroconf import IPVersion, ServiceInfo, Zeroconf

from vaultserver.crypto.tls import host_names, local_addresses

log = logging.getLogger(__name__)

SERVICE_TYPE = "_https._tcp.local."
CHECK_SECONDS = 30.0


def lan_addresses() -> list[str]:
    """Addresses worth advertising: not loopback, not the VPN gateway placeholder."""
    return [a for a in local_addresses() if not a.startswith("127.") and a not in ("::1", "10.8.0.1")]


class Advertiser:
    def __init__(self, port: int, interfaces: list[str] | None = None,
                 addresses: Callable[[], list[str]] = lan_addresses) -> None:
        self.port = port
        self._interfaces = interfaces
        self._addresses = addresses
        self._zeroconf: Zeroconf | None = None
        self._info: ServiceInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        host = host_names()[-1].removesuffix(".local")
        return f"Vault on {host}.{SERVICE_TYPE}"

    def _service_info(self, addresses: list[str]) -> ServiceInfo:
        host = next(n for n in host_names() if n.endswith(".local"))
        return ServiceInfo(SERVICE_TYPE, self.name, port=self.port, properties={"path": "/"},
                           server=f"{host}.", parsed_addresses=addresses)

    def start(self) -> None:
        # IPv4 only: every home LAN and the VPN have it, and IPv6 multicast fails noisily where unrouted.
        if self._interfaces:
            self._zeroconf = Zeroconf(interfaces=self._interfaces, ip_version=IPVersion.V4Only)
        else:
            self._zeroconf = Zeroconf(ip_version=IPVersion.V4Only)
        self._info = self._service_info(self._addresses())
        self._zeroconf.register_service(self._info, allow_name_change=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow_addresses, name="vault-mdns", daemon=True)
        self._thread.start()
        log.info("Advertising %s on port %d", self._info.name, self.port)

    def _follow_addresses(self) -> None:
        while not self._stop.wait(CHECK_SECONDS):
            self.refresh()

    def refresh(self) -> bool:
        """Re-register if the Mac's addresses changed; True if they did."""
        if not self._zeroconf or not self._info:
            return False
        current = sorted(self._addresses())
        if current == sorted(self._info.parsed_addresses()):
            return False
        self._info = self._service_info(current)
        try:
            self._zeroconf.update_service(self._info)
        except OSError:
            log.exception("Updating the mDNS record failed")
        log.info("mDNS record updated: %s", ", ".join(current))
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._zeroconf:
            try:
                if self._info:
                    self._zeroconf.unregister_service(self._info)
            finally:
                self._zeroconf.close()
        self._zeroconf = self._info = self._thread = None
