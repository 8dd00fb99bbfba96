"""HTTPS for the page and signalling: the operator's certificate, or one hdx makes itself.

Without ``tls_cert``/``tls_key`` hdx makes a self-signed ECDSA P-256 certificate for the listen
host (plus ``localhost``/``127.0.0.1``) in ``<state_dir>/tls/`` (key mode 0600) and reuses it
while it covers the host and has more than 30 days left. Its SHA-256 fingerprint is printed so
users can check it (``hdx client --tls-fingerprint`` pins it). TLS 1.2 is the minimum.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hdx.errors import ConfigError
from hdx.security.secret import check_private, private_dir, write_private

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALID_DAYS = 365
RENEW_DAYS = 30


@dataclass(frozen=True, slots=True)
class TlsSetup:
    """What the server serves: the context, the files and how users can recognise it."""

    context: ssl.SSLContext
    cert_path: Path
    fingerprint: str
    """SHA-256 of the certificate, ``AB:CD:...``."""
    self_signed: bool


def fingerprint_of(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint as browsers show it (colon-separated hex)."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def server_tls(state_dir: Path, host: str, cert_file: str | None, key_file: str | None
               ) -> TlsSetup:
    """The TLS set-up for ``host``: the given files, or a self-signed certificate."""
    if cert_file is not None and key_file is not None:
        cert_path, key_path, self_signed = Path(cert_file), Path(key_file), False
        if key_path.exists():  # group-readable is the Debian way (ssl-cert); world is not
            check_private(key_path, "TLS key", group_ok=True)
    else:
        cert_path, key_path = ensure_self_signed(private_dir(state_dir) / "tls", host)
        self_signed = True
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"the TLS certificate {cert_path} does not exist") from None
    except ValueError as exc:
        raise ConfigError(f"the TLS certificate {cert_path} is not a PEM certificate: "
                          f"{exc}") from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except FileNotFoundError as exc:
        raise ConfigError(f"TLS file missing: {exc.filename}") from None
    except ssl.SSLError as exc:
        raise ConfigError(f"the TLS key {key_path} does not belong to the certificate "
                          f"{cert_path} (or cannot be read): {exc.reason or exc}") from None
    return TlsSetup(context, cert_path, fingerprint_of(cert), self_signed)


def ensure_self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` in ``folder``: reused while it covers ``host``
    and has more than RENEW_DAYS left, else made anew."""
    private_dir(folder)
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    if cert_path.exists() and key_path.exists() and _still_good(cert_path, host):
        check_private(key_path, "TLS key")
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(host)),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hdx self-signed")])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(_names_for(host)), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    for path in (cert_path, key_path):
        path.unlink(missing_ok=True)
    write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    cert_path.chmod(0o644)
    return cert_path, key_path


def _still_good(cert_path: Path, host: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > datetime.timedelta(days=RENEW_DAYS) and all(
        n in list(names) for n in _names_for(host))


def _names_for(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                     x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    hosts = [host]
    if host in ("", "0.0.0.0", "::"):  # every interface: the machine's names and addresses
        hosts = [socket.getfqdn(), socket.gethostname(), *_interface_addresses()]
    for name in hosts:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name.strip("[]")))
        except ValueError:
            entry = x509.DNSName(name)
        if name and entry not in names:
            names.append(entry)
    return names


def _interface_addresses() -> list[str]:
    from aioice.ice import get_host_addresses

    return list(get_host_addresses(use_ipv4=True, use_ipv6=False))


def _common_name(host: str) -> str:
    return host if host not in ("", "0.0.0.0", "::") else "localhost"
