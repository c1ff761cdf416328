"""Vault advertises itself by mDNS; a browser on the same network finds it (loopback only in tests)."""

from __future__ import annotations

import time

from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

from vaultserver.discovery import SERVICE_TYPE, Advertiser


class Found(ServiceListener):
    def __init__(self) -> None:
        self.services: dict[str, object] = {}

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.services[name] = zc.get_service_info(type_, name, timeout=3000)

    update_service = add_service

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.services.pop(name, None)


def browse(seconds: float = 10.0, until=lambda services: bool(services)) -> dict:
    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    listener = Found()
    ServiceBrowser(zc, SERVICE_TYPE, listener)
    deadline = time.monotonic() + seconds
    try:
        while not until(listener.services) and time.monotonic() < deadline:
            time.sleep(0.05)
        return dict(listener.services)
    finally:
        zc.close()


def test_vault_is_found_by_name_with_its_port_and_path():
    advertiser = Advertiser(4321, interfaces=["127.0.0.1"], addresses=lambda: ["127.0.0.1"])
    advertiser.start()
    try:
        services = browse()
    finally:
        advertiser.stop()
    (name, info), = services.items()
    assert name.startswith("Vault on ") and name.endswith(SERVICE_TYPE)
    assert info.port == 4321 and info.properties[b"path"] == b"/"
    assert info.parsed_addresses() == ["127.0.0.1"]


def test_a_changed_address_is_re_advertised_and_stopping_withdraws_it():
    addresses = ["127.0.0.1"]
    advertiser = Advertiser(4322, interfaces=["127.0.0.1"], addresses=lambda: list(addresses))
    advertiser.start()
    try:
        assert browse()
        assert not advertiser.refresh()  # nothing changed
        addresses.append("127.0.0.3")
        assert advertiser.refresh()
        services = browse(until=lambda s: any(len(i.parsed_addresses()) == 2 for i in s.values() if i))
        assert sorted(next(iter(services.values())).parsed_addresses()) == ["127.0.0.1", "127.0.0.3"]
    finally:
        advertiser.stop()
    assert browse(seconds=1.5) == {}


def test_the_running_server_advertises_and_the_setting_switches_it_off_live(paths, services):
    from vaultserver.runtime import VaultRuntime

    services.settings.update(mdns_enabled=True)
    runtime = VaultRuntime(paths, services, mdns_interfaces=["127.0.0.1"])
    runtime.start(serve=True, host="127.0.0.1", port=0)
    try:
        (info,) = browse().values()
        assert info.port == runtime.endpoint.port and runtime.health().mdns
        services.settings.update(mdns_enabled=False)
        assert browse(seconds=1.5) == {} and not runtime.health().mdns
    finally:
        runtime.stop()
