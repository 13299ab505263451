"""Certificates made on the fly (EC P-256 unless asked otherwise, so a few milliseconds each).

- ``make_cert`` and ``pem``: CA and leaf certificates for the certificate store and InstallCertificate;
- ``make_root``, ``make_signer`` and ``install_root``: a firmware code-signing PKI, a ``Signer`` signing
  an image as a manufacturer's build server does.

The TLS PKI of the connection tests (server and client certificates as files) is ``tests.certs``.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from agent.core.management.certificates import MANUFACTURER_ROOT, CertificateStore

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def _certificate(name, key, *, issuer=None, ca, not_after, serial=None, key_usage=None) -> x509.Certificate:
    """A certificate for ``key`` valid from two days ago; self-signed unless ``issuer`` = (key, certificate)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, signer = issuer or (key, None)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(signer.subject if signer else subject)
               .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
               .not_valid_before(NOW - 2 * DAY).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if key_usage is not None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=key_usage, content_commitment=False, key_encipherment=not key_usage,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
    return builder.sign(signer_key, hashes.SHA256())


def make_cert(name, *, ca=True, key=None, issuer=None, expired=False, serial=None):
    """(key, certificate) valid until tomorrow, or expired yesterday.

    Self-signed unless ``issuer`` = (key, certificate).
    """
    key = key or ec.generate_private_key(ec.SECP256R1())
    not_after = NOW - DAY if expired else NOW + DAY
    return key, _certificate(name, key, issuer=issuer, ca=ca, not_after=not_after, serial=serial)


def pem(*certs) -> str:
    """PEM text of ``certs``, in order."""
    return "".join(cert.public_bytes(Encoding.PEM).decode() for cert in certs)


# ------------------------------------------------------------------ a firmware code-signing PKI


@dataclass(frozen=True)
class Signer:
    """A firmware signing certificate (``pem`` may include intermediates) and its key."""

    key: object
    cert: x509.Certificate
    pem: str

    def sign(self, data: bytes) -> str:
        """The base64 signature of ``data`` as a manufacturer's build server makes it."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            raw = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raw = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(raw).decode()


def _signing_pki_certificate(name, key, *, issuer=None, ca, expired=False, key_usage=None) -> x509.Certificate:
    """A certificate of the signing PKI: valid for 30 days, or expired yesterday."""
    not_after = NOW - DAY if expired else NOW + 30 * DAY
    return _certificate(name, key, issuer=issuer, ca=ca, not_after=not_after, key_usage=key_usage)


def make_root(name="Acme Manufacturer Root", *, expired=False):
    """(key, certificate) of a self-signed CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, _signing_pki_certificate(name, key, ca=True, expired=expired)


def make_signer(root, *, use_rsa=False, expired=False, key_usage=None, via_intermediate=False,
                intermediate_ca=True) -> Signer:
    """A signing certificate issued by ``root`` (directly or through an intermediate in the PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if use_rsa \
        else ec.generate_private_key(ec.SECP256R1())
    chain = []
    issuer = root
    if via_intermediate:
        middle_key = ec.generate_private_key(ec.SECP256R1())
        middle = _signing_pki_certificate("Acme Firmware CA", middle_key, issuer=root, ca=intermediate_ca)
        issuer, chain = (middle_key, middle), [middle]
    cert = _signing_pki_certificate("Acme Firmware Signing", key, issuer=issuer, ca=False, expired=expired,
                                    key_usage=key_usage)
    return Signer(key, cert, pem(cert, *chain))


def install_root(store: CertificateStore, root) -> None:
    """Install ``root`` as a ManufacturerRootCertificate, as InstallCertificate does."""
    assert store.install(pem(root[1]), MANUFACTURER_ROOT) == "Accepted"
