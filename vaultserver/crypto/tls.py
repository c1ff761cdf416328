"""The HTTPS certificate: a local CA made once, and a server certificate it signs for this Mac's names.

A phone trusts the CA once (README: "Trusting Vault's certificate"); when the Mac's addresses change, only
the server certificate is re-issued under the same CA, so devices keep trusting it. The owner can replace
both files with their own (`private/tls/server.pem` + `server.key`).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vaultserver.config import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, AppPaths
from vaultserver.errors import ConfigurationError

log = logging.getLogger(__name__)

VPN_GATEWAY = "10.8.0.1"
SERVER_DAYS = 397  # the longest validity Apple platforms accept for a TLS server certificate
CA_DAYS = 3650


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


def _ensure_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{key_path} is not the elliptic-curve key Vault made")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _issue_server(folder: Path, names: list[str], addresses: list[str]) -> None:
    ca_cert, ca_key = _ensure_ca(folder)
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


def _covers(cert: x509.Certificate, names: list[str], addresses: list[str]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = set(san.get_values_for_type(x509.DNSName)) | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }
    fresh = cert.not_valid_after_utc - datetime.now(UTC) > timedelta(days=30)
    return fresh and set(names) | set(addresses) <= have


def ensure_certificate(paths: AppPaths, force: bool = False) -> TlsFiles:
    """Make (or re-issue) the server certificate when missing, expiring, or not naming a current address.

    A certificate the owner supplied (no ca.key beside it) is never touched.
    """
    folder = paths.private / "tls"
    folder.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    files = TlsFiles(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    owner_supplied = files.cert.exists() and not (folder / "ca.key").exists()
    if owner_supplied and not force:
        return files
    names, addresses = host_names(), local_addresses()
    if (
        force
        or not files.cert.exists()
        or not files.key.exists()
        or not _covers(x509.load_pem_x509_certificate(files.cert.read_bytes()), names, addresses)
    ):
        _issue_server(folder, names, addresses)
    return files


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
    )
