"""The HTTPS certificate: a local CA made once, and a server certificate it signs for this Mac's names.

A phone trusts the CA once (README: "Trusting Vault's certificate"); when the Mac's addresses change, only
the server certificate is re-issued under the same CA, so devices keep trusting it. The owner can replace
both files with their own (`private/tls/server.pem` + `server.key`).

A device that trusts the CA would believe anything it signs, so the CA is made harmless beyond home: critical
X.509 name constraints let it vouch only for `.local` names, `localhost`, this Mac's own host name and
loopback/private addresses (a leaf for `example.com` fails validation), and its private key is kept only
sealed (the at-rest container, under a data key held in the key store, wrapped by the master key). A CA made
before either rule is replaced on the next start, and the owner is told that devices must trust it again.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vaultserver.config import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, AppPaths
from vaultserver.crypto import container, envelope
from vaultserver.crypto.keystore import key_lock, open_key_store
from vaultserver.errors import VaultError

log = logging.getLogger(__name__)

VPN_GATEWAY = "10.8.0.1"
SERVER_DAYS = 397  # the longest validity Apple platforms accept for a TLS server certificate
CA_DAYS = 3650
CA_SECRET = "tls-ca"  # the key store's name for the data key that seals the CA's private key
SEALED_CA_KEY, LEGACY_CA_KEY, CA_REPLACED = "ca.key.vlt", "ca.key", "ca-replaced"
CA_NOTICE_DAYS = 90  # how long `cert show` reminds the owner that devices must trust a replaced CA again
# Where a Vault can be reached from home: loopback, the private IPv4 ranges (LAN, the OpenVPN subnet) and
# IPv6 unique-local. Link-local addresses are left out: they are never put in the certificate.
PERMITTED_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


CaKey = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # server certificate followed by the CA (a chain)
    key: Path
    ca: Path


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    not_after: datetime
    names: list[str]
    sha256: str
    ca_notice: str | None = None  # that the CA was replaced lately, and devices must trust the new one


def host_names() -> list[str]:
    host = socket.gethostname().split(".")[0] or "localhost"
    return sorted({"localhost", f"{host}.local", host})


def local_addresses() -> list[str]:
    """The Mac's current non-link-local addresses (ifaddr comes with zeroconf)."""
    import ifaddr

    found = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            parsed = ipaddress.ip_address(address.split("%")[0])
            if not parsed.is_link_local:
                found.add(str(parsed))
    return sorted(found | {"127.0.0.1", "::1", VPN_GATEWAY})


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=PRIVATE_FILE_MODE, exist_ok=True)
    path.chmod(PRIVATE_FILE_MODE)
    path.write_bytes(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name_constraints() -> x509.NameConstraints:
    """What the CA may vouch for: `.local` names, localhost, this Mac's bare host name, home addresses."""
    names = {"local", "localhost"} | {h for h in host_names() if "." not in h}
    return x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(n) for n in sorted(names)]
        + [x509.IPAddress(ipaddress.ip_network(n)) for n in PERMITTED_NETWORKS],
        excluded_subtrees=None,
    )


def _constrained(cert: x509.Certificate) -> x509.NameConstraints | None:
    try:
        extension = cert.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return None
    return extension.value if extension.critical else None


def _within(ca_cert: x509.Certificate, names: list[str], addresses: list[str]) -> tuple[list[str], list[str]]:
    """The names and addresses the CA may put in a certificate (a browser rejects the whole certificate if
    a single one falls outside); others, such as a global IPv6 address, are left out."""
    constraints = _constrained(ca_cert)
    subtrees = (constraints.permitted_subtrees if constraints else None) or []
    domains = [str(t.value).lower() for t in subtrees if isinstance(t, x509.DNSName)]
    networks = [t.value for t in subtrees if isinstance(t, x509.IPAddress)
                and isinstance(t.value, ipaddress.IPv4Network | ipaddress.IPv6Network)]
    kept_names = [n for n in names if any(n.lower() == d or n.lower().endswith("." + d) for d in domains)]
    kept_addresses = [a for a in addresses
                      if any(ipaddress.ip_address(a) in net for net in networks
                             if net.version == ipaddress.ip_address(a).version)]
    if left_out := sorted(set(names) - set(kept_names) | set(addresses) - set(kept_addresses)):
        log.info("Left out of the TLS certificate (beyond what the local CA may vouch for): %s",
                 ", ".join(left_out))
    return kept_names, kept_addresses


def _shred(path: Path) -> None:
    """Overwrite, then remove: the old CA key was on disk in clear."""
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.write(os.urandom(size))
        fh.flush()
        os.fsync(fh.fileno())
    path.unlink()


def _new_ca(paths: AppPaths, folder: Path) -> tuple[x509.Certificate, CaKey]:
    """A name-constrained CA whose private key is written only sealed; call under `key_lock`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"Vault local CA ({host_names()[-1]})"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vault"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_name_constraints(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    data_key = envelope.new_data_key()
    sealed = folder / SEALED_CA_KEY
    partial = sealed.with_name(sealed.name + ".tmp")
    _write_private(partial, b"")
    container.seal_bytes(_key_pem(key), partial, data_key)
    store = open_key_store(paths)
    ring = store.reload()
    ring.seal_secret(CA_SECRET, data_key)
    store.save(ring)
    os.replace(partial, sealed)
    (folder / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _unseal_ca_key(paths: AppPaths, folder: Path, cert: x509.Certificate) -> CaKey | None:
    """The CA's private key, or None if it cannot be had (its seal key lost, the file damaged or replaced)."""
    sealed = folder / SEALED_CA_KEY
    data_key = open_key_store(paths).reload().secret(CA_SECRET)
    if data_key is None or not sealed.exists():
        return None
    try:
        key = serialization.load_pem_private_key(container.unseal(sealed.read_bytes(), data_key), None)
    except (VaultError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return key


def _replace_ca(paths: AppPaths, folder: Path, why: str) -> tuple[x509.Certificate, CaKey]:
    cert, key = _new_ca(paths, folder)
    (folder / CA_REPLACED).write_text(datetime.now(UTC).isoformat(), encoding="utf-8")
    log.warning("Vault's local certificate authority was replaced (%s). Devices that trusted the old one "
                "must install the new one to trust Vault again: %s", why, folder / "ca.pem")
    return cert, key


def _ensure_ca(paths: AppPaths, folder: Path) -> tuple[x509.Certificate, CaKey | None]:
    """The CA, with its key when it was just made (else None: unsealed only when a certificate is issued).
    Made if missing; replaced if it predates name constraints or a sealed key."""
    cert_path, legacy = folder / "ca.pem", folder / LEGACY_CA_KEY
    with key_lock(paths):
        if not cert_path.exists():
            cert, key = _new_ca(paths, folder)
            log.info("Made Vault's local certificate authority: %s", cert_path)
            return cert, key
        if not ((folder / SEALED_CA_KEY).exists() or legacy.exists()):
            return _replace_ca(paths, folder, "its key was missing")
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if not legacy.exists() and _constrained(cert) is not None:
            return cert, None
        replaced = _replace_ca(paths, folder, "the old one could vouch for any name, and its key was on disk "
                                              "in clear")
        if legacy.exists():
            _shred(legacy)
        return replaced


def _ca_key(paths: AppPaths, folder: Path) -> tuple[x509.Certificate, CaKey]:
    """The CA (read again: another process may have just replaced it) and its key, for issuing; a CA whose
    key can no longer be unsealed is replaced."""
    with key_lock(paths):
        cert = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
        if (key := _unseal_ca_key(paths, folder, cert)) is not None:
            return cert, key
        return _replace_ca(paths, folder, "its sealed key could not be opened with this key store")


def _issue_server(folder: Path, ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                  names: list[str], addresses: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[-1])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(folder / "server.key", _key_pem(key))
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    (folder / "server.pem").write_bytes(chain)
    log.info("Issued a TLS certificate for %s", ", ".join(names + addresses))


def _current(files: TlsFiles, ca_cert: x509.Certificate, names: list[str], addresses: list[str]) -> bool:
    """Whether the server certificate is this CA's, not expiring within 30 days, and names every name."""
    if not (files.cert.exists() and files.key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    try:
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    have = set(san.get_values_for_type(x509.DNSName)) | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }
    fresh = cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=30)
    return fresh and set(names) | set(addresses) <= have


def tls_files(paths: AppPaths) -> TlsFiles:
    """Where the served certificate's files are (they may not exist yet: see `ensure_certificate`)."""
    folder = paths.private / "tls"
    return TlsFiles(folder / "server.pem", folder / "server.key", folder / "ca.pem")


def ensure_certificate(paths: AppPaths, force: bool = False) -> TlsFiles:
    """Make (or re-issue) the server certificate when missing, expiring, not naming a current address, or
    when the CA was (re)made.

    A certificate the owner supplied (no CA key of Vault's beside it) is never touched.
    """
    folder = paths.private / "tls"
    folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    files = tls_files(paths)
    vault_made = (folder / SEALED_CA_KEY).exists() or (folder / LEGACY_CA_KEY).exists()
    if files.cert.exists() and not vault_made and not force:
        return files
    ca_cert, ca_key = _ensure_ca(paths, folder)
    names, addresses = _within(ca_cert, host_names(), local_addresses())
    if not force and ca_key is None and _current(files, ca_cert, names, addresses):
        return files
    if ca_key is None:
        ca_cert, ca_key = _ca_key(paths, folder)
        names, addresses = _within(ca_cert, host_names(), local_addresses())
    _issue_server(folder, ca_cert, ca_key, names, addresses)
    return files


def _ca_notice(folder: Path) -> str | None:
    try:
        replaced = datetime.fromisoformat((folder / CA_REPLACED).read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    if datetime.now(UTC) - replaced > timedelta(days=CA_NOTICE_DAYS):
        return None
    return (f"Vault's certificate authority was replaced on {replaced:%Y-%m-%d} by one that vouches only for "
            f"home names and addresses: devices that trusted the old one must install {folder / 'ca.pem'} "
            "again.")


def describe(cert_path: Path) -> CertificateInfo:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = list(san.get_values_for_type(x509.DNSName)) + [
            str(a) for a in san.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        names = []
    return CertificateInfo(
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_after_utc,
        names,
        cert.fingerprint(hashes.SHA256()).hex(":"),
        _ca_notice(cert_path.parent),
    )
