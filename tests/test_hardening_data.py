"""The data folder under attack or bad luck: a damaged database is explained, never a traceback; the folder
and what Vault writes in it are the owner's alone; the local CA can vouch only for home names and addresses,
and its key is sealed by the master key."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import DNSName, IPAddress, PolicyBuilder, Store, VerificationError

from vaultserver.config import AppPaths
from vaultserver.crypto import container, tls
from vaultserver.crypto.keystore import open_key_store
from vaultserver.crypto.tls import describe, ensure_certificate
from vaultserver.runtime import VaultRuntime
from vaultserver.services import open_services

RESTORE_ADVICE = "restore vault.db from a backup"


def vault(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vaultserver.cli", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout, env=os.environ)


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))[2:]


# --- a damaged library database ----------------------------------------------------------------------------


def damage(paths: AppPaths, how: str) -> bytes:
    """Ruin vault.db the way a bad disk or a half-finished copy does; returns the bytes left on disk."""
    if how == "random bytes":
        paths.database.write_bytes(os.urandom(64 * 1024))
    else:  # a real library database cut short
        services = open_services(paths)
        services.users.create("owner", "Own3r!pass", "admin")
        services.close()
        whole = paths.database.read_bytes()
        paths.database.write_bytes(whole[: len(whole) // 2])
    return paths.database.read_bytes()


@pytest.mark.parametrize("how", ["random bytes", "truncated"])
def test_serve_on_a_damaged_database_says_what_is_wrong_and_what_to_do(paths, how):
    left = damage(paths, how)
    result = vault(paths.root, "serve", "--host", "127.0.0.1", "--port", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"error [SYSTEM_002]: The library database ({paths.database}) is damaged" in result.stderr
    assert ("file is not a database" if how == "random bytes" else "malformed") in result.stderr
    assert "Your media files are safe" in result.stderr and RESTORE_ADVICE in result.stderr
    assert paths.database.read_bytes() == left  # nothing was "repaired" over what a backup could save


@pytest.mark.parametrize("how", ["random bytes", "truncated"])
def test_doctor_reports_a_damaged_database_as_one_failed_check_and_runs_the_others(paths, how):
    damage(paths, how)
    result = vault(paths.root, "doctor")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = {line.split("]")[1].split(":")[0].strip(): line for line in result.stdout.splitlines()
             if line.startswith("[")}
    assert lines["database"].startswith("[FAIL]") and "is damaged" in lines["database"]
    assert RESTORE_ADVICE in lines["database"]
    assert all(lines[name].startswith("[ok]") for name in ("ffmpeg", "data dir", "key store")), lines
    assert "1 check(s) failed." in result.stdout


def test_opening_a_damaged_database_raises_the_error_the_app_shows(paths, qtbot, monkeypatch):
    from gui import app as gui_app
    from vaultserver.db import DatabaseDamaged

    damage(paths, "random bytes")
    with pytest.raises(DatabaseDamaged) as raised:
        open_services(paths)
    assert raised.value.code == "SYSTEM_002" and RESTORE_ADVICE in raised.value.message
    shown: list[str] = []
    monkeypatch.setattr(gui_app.QMessageBox, "critical", lambda _parent, _title, text: shown.append(text))
    monkeypatch.setattr(gui_app, "setup_logging", lambda *_args: None)  # keep this process's logging as is
    assert gui_app.run_app(str(paths.root)) == 1
    assert shown == [raised.value.message]


# --- an owner-only data folder -----------------------------------------------------------------------------


def test_a_real_start_leaves_the_data_folder_and_its_files_owner_only_whatever_the_umask(tmp_path):
    previous = os.umask(0o022)  # the usual umask: files 0644, folders 0755, unless Vault says otherwise
    try:
        paths = AppPaths.scratch(tmp_path)
        serve = subprocess.Popen(
            [sys.executable, "-m", "vaultserver.cli", "--data-dir", str(paths.root), "serve",
             "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    finally:
        os.umask(previous)
    try:
        assert serve.stdout is not None
        for line in serve.stdout:
            if "Press Ctrl-C" in line:
                break
        else:
            pytest.fail(f"serve did not start: {serve.stderr.read() if serve.stderr else ''}")
        assert mode(paths.root) == "700"
        created = [paths.database, paths.settings_file, paths.logs / "vault.log"]
        created += [p for p in paths.root.glob("vault.db-*")]  # SQLite's -wal and -shm follow the database
        assert {str(p.relative_to(paths.root)): mode(p) for p in created} == {
            str(p.relative_to(paths.root)): "600" for p in created}
        assert all(mode(folder) == "700" for folder in (paths.failed, paths.logs, paths.private))
    finally:
        serve.terminate()
        serve.wait(30)


def test_a_data_folder_opened_to_others_is_closed_again_at_start(paths):
    paths.root.chmod(0o755)
    paths.ensure()
    assert mode(paths.root) == "700"


def test_doctor_says_how_to_close_a_data_folder_open_to_other_users(paths):
    paths.root.chmod(0o755)
    result = vault(paths.root, "doctor")
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if "data dir" in line)
    assert line.startswith("[FAIL]") and "mode 755" in line and f"chmod 700 '{paths.root}'" in line


# --- a local CA that vouches only for home names, with its key sealed ---------------------------------------


def certificate(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None = None,
                issuer_key: ec.EllipticCurvePrivateKey | None = None, sans: tuple[x509.GeneralName, ...] = (),
                ca: bool = False) -> x509.Certificate:
    """A certificate as any CA could sign it: a root without name constraints, or a leaf `issuer` signed."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer = issuer_key or key
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=90))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False, data_encipherment=False,
                              key_agreement=False, encipher_only=False, decipher_only=False)
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (usage, True), (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)]
    else:
        extensions = [(x509.SubjectAlternativeName(list(sans)), False),
                      (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
                      (x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False)]
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def pem(item: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def unsealed_ca(paths: AppPaths) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA and its key, opened the only way there is: the data key in the key store, then the container."""
    folder = paths.private / "tls"
    data_key = open_key_store(paths).reload().secret(tls.CA_SECRET)
    assert data_key is not None
    key = serialization.load_pem_private_key(container.unseal((folder / "ca.key.vlt").read_bytes(), data_key),
                                             None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes()), key


def verifier(ca: x509.Certificate, subject: str):
    name = subject.strip("[]")
    target: DNSName | IPAddress
    try:
        target = IPAddress(ipaddress.ip_address(name))
    except ValueError:
        target = DNSName(name)
    return PolicyBuilder().store(Store([ca])).time(datetime.now(UTC)).build_server_verifier(target)


def test_the_local_ca_vouches_for_vaults_own_names_and_for_nothing_beyond_home(paths):
    files = ensure_certificate(paths)
    ca, ca_key = unsealed_ca(paths)
    assert ca.extensions.get_extension_for_class(x509.NameConstraints).critical
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    for name in describe(files.cert).names:  # every name and address Vault's certificate carries
        verifier(ca, name).verify(leaf, [])
    key = ec.generate_private_key(ec.SECP256R1())
    for name, san in [("example.com", x509.DNSName("example.com")), ("www.bank.example", x509.DNSName(
            "www.bank.example")), ("8.8.8.8", x509.IPAddress(ipaddress.ip_address("8.8.8.8")))]:
        forged = certificate(name, key, ca, ca_key, (san,))
        with pytest.raises(VerificationError, match="name constraint"):
            verifier(ca, name).verify(forged, [])
    nas = certificate("nas.local", key, ca, ca_key, (x509.DNSName("nas.local"),))
    verifier(ca, "nas.local").verify(nas, [])  # another box at home: inside the constraints


def test_a_certificate_for_another_site_signed_by_the_ca_fails_a_real_tls_handshake(paths, tmp_path):
    ensure_certificate(paths)
    ca, ca_key = unsealed_ca(paths)
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "forged.pem").write_bytes(pem(certificate("example.com", key, ca, ca_key,
                                                          (x509.DNSName("example.com"),))))
    (tmp_path / "forged.key").write_bytes(pem(key))
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(tmp_path / "forged.pem", tmp_path / "forged.key")
    ours, theirs = socket.socketpair()

    def intercept() -> None:  # the man in the middle presents the forged certificate; the client hangs up
        with theirs, contextlib.suppress(ssl.SSLError, OSError):
            server_side.wrap_socket(theirs, server_side=True).close()
    interceptor = threading.Thread(target=intercept)
    interceptor.start()
    client = ssl.create_default_context(cafile=str(paths.private / "tls" / "ca.pem"))
    with pytest.raises(ssl.SSLCertVerificationError, match="permitted subtree violation"):
        client.wrap_socket(ours, server_hostname="example.com")
    ours.close()
    interceptor.join(10)


def test_a_real_tls_handshake_with_the_constrained_ca_still_works(server, paths):
    context = ssl.create_default_context(cafile=str(paths.private / "tls" / "ca.pem"))
    for host in ("localhost", "127.0.0.1"):
        with socket.create_connection(("127.0.0.1", server.endpoint.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls_socket:
            assert tls_socket.version() in ("TLSv1.2", "TLSv1.3")


def test_the_ca_key_is_only_on_disk_sealed_and_survives_master_key_rotations(paths, services):
    first = ensure_certificate(paths)
    folder = paths.private / "tls"
    assert not (folder / "ca.key").exists() and b"PRIVATE KEY" not in (folder / "ca.key.vlt").read_bytes()
    assert mode(folder / "ca.key.vlt") == "600"
    ca_before = first.ca.read_bytes()
    services.keys.rotate()
    services.keys.rotate()  # the master key that first sealed it is retired by now
    assert services.keys.status().master_keys_in_use == 1
    again = ensure_certificate(paths, force=True)
    assert again.ca.read_bytes() == ca_before  # devices keep trusting: the same CA signed the new certificate
    ca, _key = unsealed_ca(paths)
    x509.load_pem_x509_certificate(again.cert.read_bytes()).verify_directly_issued_by(ca)


def test_an_unconstrained_ca_with_a_clear_key_is_replaced_at_the_next_start_and_the_owner_told(
        paths, caplog):
    folder = paths.private / "tls"
    folder.mkdir(mode=0o700)
    old_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    old_ca = certificate("Vault local CA (old)", old_key, ca=True)
    (folder / "ca.pem").write_bytes(pem(old_ca))
    (folder / "ca.key").write_bytes(pem(old_key))
    leaf = certificate("localhost", leaf_key, old_ca, old_key, (x509.DNSName("localhost"),))
    (folder / "server.pem").write_bytes(pem(leaf) + pem(old_ca))
    (folder / "server.key").write_bytes(pem(leaf_key))
    runtime = VaultRuntime(paths)
    with caplog.at_level(logging.WARNING, logger="vaultserver.crypto.tls"):
        runtime.start(serve=True, host="127.0.0.1", port=0)
    try:
        assert "must install the new one" in caplog.text
        assert not (folder / "ca.key").exists() and (folder / "ca.pem").read_bytes() != pem(old_ca)
        context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
        with socket.create_connection(("127.0.0.1", runtime.endpoint.port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="localhost"):
            pass
    finally:
        runtime.close()
    shown = vault(paths.root, "cert", "show")
    assert shown.returncode == 0 and "Note: Vault's certificate authority was replaced on" in shown.stdout
    assert "must install" in shown.stdout and str(folder / "ca.pem") in shown.stdout
