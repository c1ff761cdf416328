"""What every request meets before and after its route, through the real app in process: the network gate
(checked against the peer address the server reports), the documented error shape and security headers,
and the gallery's static files.
"""

from __future__ import annotations

from vaultserver.api.gate import NetworkGate, parse_ip
from vaultserver.config import Settings


def test_a_source_outside_the_allowed_networks_is_refused_and_audited(make_app_client, make_user, services):
    owner = make_user(role="admin")
    outsider = make_app_client(peer="192.168.7.20")
    reply = outsider.request("GET", "/api/health")
    assert reply.status == 403 and reply.code == "SEC_001"
    assert outsider.login(owner.username, owner.password).status == 403
    denied = services.audit.recent(event="network_denied")
    assert denied and denied[0].ip_address == "192.168.7.20"
    services.settings.update(allowed_networks=["192.168.7.0/24"])  # applies live
    assert outsider.request("GET", "/api/health").status == 200


def test_the_home_lan_the_vpn_and_this_machine_are_allowed_by_default(make_app_client):
    for peer in ("127.0.0.1", "::1", "192.168.1.77", "10.8.0.5", "::ffff:192.168.1.20"):
        assert make_app_client(peer=peer).request("GET", "/api/health").status == 200, peer
    for peer in ("192.168.2.1", "10.8.1.1", "8.8.8.8", "2001:db8::1", "127.0.0.2"):
        assert make_app_client(peer=peer).request("GET", "/api/health").code == "SEC_001", peer


def test_forwarded_for_is_ignored_unless_from_a_trusted_proxy(make_app_client, services):
    client = make_app_client()
    spoofed = client.request("GET", "/api/health", headers={"X-Forwarded-For": "8.8.8.8"})
    assert spoofed.status == 200  # the header is ignored: the real peer is allowed
    outsider = make_app_client(peer="203.0.113.9")
    assert outsider.request("GET", "/api/health", headers={"X-Forwarded-For": "10.8.0.7"}).status == 403
    services.settings.update(trusted_proxies=["127.0.0.1/32"])
    assert client.request("GET", "/api/health", headers={"X-Forwarded-For": "8.8.8.8"}).status == 403
    assert client.request("GET", "/api/health", headers={"X-Forwarded-For": "10.8.0.7"}).status == 200


def test_ipv4_mapped_addresses_are_matched_as_ipv4():
    gate = NetworkGate(Settings())
    assert str(parse_ip("::ffff:192.168.1.20")) == "192.168.1.20"
    assert gate.allows(parse_ip("::ffff:192.168.1.20")) and gate.allows(parse_ip("10.8.0.42"))
    assert not gate.allows(parse_ip("::ffff:192.168.2.20")) and not gate.allows(parse_ip("10.8.1.1"))
    assert not gate.allows(parse_ip("not an address")) and gate.allows(parse_ip("::1"))


def test_errors_have_the_documented_shape_and_every_response_security_headers(client, make_user):
    viewer = make_user()
    client.login(viewer.username, viewer.password)
    reply = client.request("GET", "/api/media/0123456789abcdef0123456789abcdef")
    assert reply.status == 404
    error = reply.json()["error"]
    assert set(error) == {"code", "message", "details", "timestamp"} and error["code"] == "MEDIA_001"
    for header in ("Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
                   "Referrer-Policy"):
        assert reply.headers[header], header
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    unknown = client.request("GET", "/api/nothing-here")
    assert unknown.status == 404 and unknown.json()["error"]["code"]


def test_gallery_files_are_revalidated_cheaply_and_nothing_outside_them_is_served(client):
    first = client.request("GET", "/assets/js/app.js")
    assert first.status == 200 and first.headers["Content-Type"].startswith("text/javascript")
    etag = first.headers["ETag"]
    assert etag and first.headers["Cache-Control"] == "no-cache"
    again = client.request("GET", "/assets/js/app.js", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""
    changed = client.request("GET", "/assets/js/app.js", headers={"If-None-Match": '"stale"'})
    assert changed.status == 200 and changed.body == first.body
    for attack in ("/assets/../../vaultserver/config.py", "/assets/%2e%2e/%2e%2e/pyproject.toml"):
        assert client.request("GET", attack).status == 404, attack
