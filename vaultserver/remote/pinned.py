"""HTTPS to a Vault that trusts exactly one CA: the one whose pin the join string carries.

A worker machine has never seen Vault's CA, and must not trust the system's CAs for it either (anyone with
a public certificate could then pose as the Vault). So `pinned_context` fetches the CA over a first,
unverified connection, refuses it unless its SHA-256 is the pin, and returns a context that trusts only that
CA. Before handing it out it makes one verified connection: a server holding some other certificate (a
stranger serving a copy of the real, public, CA file) is refused there and then, not on the first job.
Host names are not checked: the URL may be a bare LAN address, and the pin already names the one CA.
"""

from __future__ import annotations

import hmac
import http.client
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from vaultserver.errors import VaultError
from vaultserver.https_client import HttpsClient
from vaultserver.join_string import JoinString, ca_pin

CA_PATH = "api/workers/ca.pem"  # under the join string's URL
DEFAULT_TIMEOUT = 15.0
MAX_CA_BYTES = 64 * 1024
MISMATCH = "The server's certificate is not the one this join string names"


class PinMismatch(VaultError):
    """The server at the join string's URL is not (or not only) the Vault that made the join string."""

    code = "SYSTEM_002"  # an integrity failure: the other end is not who the join string says
    status = 502


class ServerUnreachable(VaultError):
    """No answer from the URL (the server is off, the address changed, a firewall); worth trying again."""

    code = "SYSTEM_001"
    status = 503


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Address:
        parts = urlsplit(url)
        return cls(parts.hostname or "", parts.port or 443)


def _get_ca(address: Address, context: ssl.SSLContext, timeout: float) -> bytes:
    connection = http.client.HTTPSConnection(address.host, address.port, context=context, timeout=timeout)
    try:
        connection.request("GET", "/" + CA_PATH)
        response = connection.getresponse()
        body = response.read(MAX_CA_BYTES + 1)
    except ssl.SSLCertVerificationError as exc:
        raise PinMismatch(f"{MISMATCH}: it is not signed by the pinned certificate authority ({exc.reason})",
                          details={"host": address.host, "port": address.port}) from None
    except (OSError, http.client.HTTPException) as exc:
        raise ServerUnreachable(f"Cannot reach Vault at {address.host}:{address.port}: {exc}",
                                details={"host": address.host, "port": address.port}) from None
    finally:
        connection.close()
    if response.status == 403:
        raise VaultError("Vault refused this machine: it admits only addresses of the home network and VPN "
                         "(its Network settings)", code="SEC_001", status=403)
    if response.status != 200 or len(body) > MAX_CA_BYTES:
        raise PinMismatch(f"{MISMATCH}: it did not hand out a Vault certificate authority "
                          f"(HTTP {response.status})", details={"status": response.status})
    return body


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def pinned_context(url: str, pin: str, timeout: float = DEFAULT_TIMEOUT) -> ssl.SSLContext:
    """A client context trusting only the CA the Vault at `url` presents, if its pin is `pin`.

    Raises PinMismatch (wrong CA, or a server certificate that CA did not sign), ServerUnreachable (no
    connection), or VaultError SEC_001 (the server's network gate turned this machine away)."""
    address = Address.of(url)
    pem = _get_ca(address, _unverified(), timeout)
    try:
        presented = ca_pin(pem)
    except VaultError:
        raise PinMismatch(f"{MISMATCH}: it sent something other than a certificate") from None
    if not hmac.compare_digest(presented, pin.lower()):
        raise PinMismatch(MISMATCH, details={"expected": pin, "presented": presented})
    context = ssl.create_default_context(cadata=pem.decode("ascii"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    _get_ca(address, context, timeout)  # the server's own certificate must chain to the pinned CA
    return context


def pinned_client(join: JoinString, timeout: float = DEFAULT_TIMEOUT) -> HttpsClient:
    """An HttpsClient for the worker: the join string's server, its pinned CA, its token on every request."""
    address = Address.of(join.url)
    client = HttpsClient(address.port, None, address.host, timeout=timeout,
                         context=pinned_context(join.url, join.ca_pin, timeout))
    client.token = join.token
    return client
