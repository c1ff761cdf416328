"""The network gate: the first check on every request. Only the home LAN, the VPN and this Mac get in."""

from __future__ import annotations

import ipaddress
import logging
from functools import cached_property

from vaultserver.config import Settings

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_ip(text: str | None) -> Address | None:
    """An address, with IPv4-mapped IPv6 (::ffff:a.b.c.d) unwrapped to IPv4; None if unparseable."""
    try:
        address = ipaddress.ip_address((text or "").split("%")[0].strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def local_networks() -> list[Network]:
    """The networks this Mac is on right now (for the owner's "allow this network" tick)."""
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            network = ipaddress.ip_network(f"{address.split('%')[0]}/{ip.network_prefix}", strict=False)
            if not network.is_link_local:
                found.append(network)
    return found


DECISIONS = 1024  # distinct (peer, X-Forwarded-For) pairs remembered; a home has a handful


class NetworkGate:
    """One gate per version of the settings (a change builds a new one), so its answers can be kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._decisions: dict[tuple[str | None, str | None], tuple[Address | None, bool]] = {}

    def check(self, peer: str | None, forwarded_for: str | None) -> tuple[Address | None, bool]:
        """(the client's address, whether it may come in), worked out once per peer and header."""
        key = (peer, forwarded_for)
        decision = self._decisions.get(key)
        if decision is None:
            address = self.client_ip(peer, forwarded_for)
            decision = (address, self.allows(address))
            if len(self._decisions) >= DECISIONS:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    @cached_property
    def networks(self) -> list[Network]:
        nets = [ipaddress.ip_network(n) for n in self.settings.allowed_networks]
        if self.settings.vpn_subnet:
            nets.append(ipaddress.ip_network(self.settings.vpn_subnet))
        if self.settings.allow_local_networks:
            nets += local_networks()
        return nets

    @cached_property
    def proxies(self) -> list[Network]:
        return [ipaddress.ip_network(n) for n in self.settings.trusted_proxies]

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> Address | None:
        """The peer address; X-Forwarded-For counts only when the peer is a configured trusted proxy."""
        address = parse_ip(peer)
        if address is None or not forwarded_for or not any(address in p for p in self.proxies):
            return address
        for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
            hop_ip = parse_ip(hop)
            if hop_ip is None:
                return None
            if not any(hop_ip in p for p in self.proxies):
                return hop_ip
        return address

    def allows(self, address: Address | None) -> bool:
        return address is not None and any(
            address.version == n.version and address in n for n in self.networks
        )
