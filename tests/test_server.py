"""The server's runtime: certificates (and serving a new one at once), restart after a crash of the server
thread, health."""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
import time
from dataclasses import FrozenInstanceError
from datetime import timedelta

import pytest
from cryptography import x509

from vaultserver.crypto.tls import VPN_GATEWAY, ensure_certificate
from vaultserver.runtime import VaultRuntime


def sans(path):
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)), set(san.get_values_for_type(x509.IPAddress))


def test_certificate_names_this_mac_and_chains_to_a_local_ca(paths):
    files = ensure_certificate(paths)
    names, addresses = sans(files.cert)
    assert "localhost" in names and any(n.endswith(".local") for n in names)
    assert {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", VPN_GATEWAY)} <= addresses
    context = ssl.create_default_context(cafile=str(files.ca))
    assert context.cert_store_stats()["x509_ca"] == 1
    assert oct(files.key.stat().st_mode)[-3:] == "600"


def test_reissue_keeps_the_ca_so_trusting_devices_keep_trusting(paths):
    first = ensure_certificate(paths)
    ca_before, cert_before = first.ca.read_bytes(), first.cert.read_bytes()
    assert ensure_certificate(paths).cert.read_bytes() == cert_before  # nothing changed: kept
    again = ensure_certificate(paths, force=True)
    assert again.ca.read_bytes() == ca_before and again.cert.read_bytes() != cert_before


def served_fingerprint(port: int) -> str:
    """SHA-256 of the certificate a client is handed now, written as `describe` writes it."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest().hex(":")


def test_a_reissued_certificate_is_served_at_once_on_the_same_port(server):
    port = server.endpoint.port
    before = server.certificate()
    assert served_fingerprint(port) == before.sha256
    after = server.reissue_certificate()
    assert after.sha256 != before.sha256 and after.ca_file == before.ca_file
    assert server.endpoint.port == port and served_fingerprint(port) == after.sha256


def test_reissuing_while_the_server_is_stopped_leaves_it_stopped_until_started(server):
    server.stop_server()
    issued = server.reissue_certificate()
    assert server.endpoint is None and not server.health().server
    server.start_server()
    assert served_fingerprint(server.endpoint.port) == issued.sha256


def test_a_certificate_rewritten_on_disk_is_picked_up_by_the_running_server(server, paths, monkeypatch):
    monkeypatch.setattr(server, "WATCHDOG_SECONDS", 0.2)  # from its next look on, a quicker beat
    port = server.endpoint.port
    before = served_fingerprint(port)
    fresh = ensure_certificate(paths, force=True)  # as `vaultserver cert regenerate` does from a terminal
    deadline = time.monotonic() + 15
    while served_fingerprint(port) == before:
        assert time.monotonic() < deadline, "the new certificate was not served"
        time.sleep(0.1)
    assert served_fingerprint(port) == server.certificate().sha256
    assert fresh.cert == server.certificate().cert_file and server.restarts == 0


def test_an_owner_supplied_certificate_is_never_replaced(paths):
    files = ensure_certificate(paths)
    (paths.private / "tls" / "ca.key.vlt").unlink()  # no CA key beside it: the owner's own certificate
    mine = files.cert.read_bytes()
    assert ensure_certificate(paths).cert.read_bytes() == mine


def test_a_crashed_server_thread_is_restarted_on_the_same_port(paths, services, make_client, server):
    port = server.endpoint.port
    server.server.stop()  # the thread dies as if it had crashed
    deadline = time.monotonic() + 10
    while not (server.server.alive and server.restarts):
        assert time.monotonic() < deadline, "server was not restarted"
        time.sleep(0.1)
    assert server.endpoint.port == port
    assert make_client().request("GET", "/api/health").status == 200
    assert server.health().server and server.health().server_restarts == 1


def test_health_reports_urls_and_state(paths, services):
    runtime = VaultRuntime(paths, services)
    runtime.start(serve=True, host="0.0.0.0", port=0)
    try:
        health = runtime.health()
        assert health.running and health.server and not health.paused and health.error is None
        assert any(u.endswith(f":{runtime.endpoint.port}/") and ".local" in u for u in health.urls)
        assert health.queue.active == health.queue_active == 0
        with pytest.raises(FrozenInstanceError):
            health.running = False  # type: ignore[misc]
    finally:
        runtime.stop()
    assert not runtime.health().running


def test_an_overdue_master_key_is_rotated_automatically(paths, services, monkeypatch):
    before = services.keys.status()
    later = before.rotation_due_at + timedelta(hours=1)
    monkeypatch.setattr("vaultserver.services.keys.utcnow", lambda: later)
    runtime = VaultRuntime(paths, services)
    runtime.start(serve=False)
    try:
        deadline = time.monotonic() + 10
        while services.keys.status().master_key_id == before.master_key_id:
            assert time.monotonic() < deadline, "the overdue key was not rotated"
            time.sleep(0.1)
    finally:
        runtime.stop()
