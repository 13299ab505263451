"""A throw-away PKI for TLS tests: CAs, server and client certificates as PEM files.

Usage::

    pki = make_pki(tmp_path)
    server_ctx = server_ssl_context(pki.server, ca=pki.ca, require_client_cert=True)
    # connect a client with ca_file=pki.ca.cert, client_cert_file=pki.client.cert, ...

Keys are EC P-256, so a whole PKI is generated in a few milliseconds.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost", "127.0.0.1")
WRONG_HOST_NAME = "csms.example.invalid"


@dataclass(frozen=True)
class KeyPair:
    """PEM file paths of one certificate and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Everything ``make_pki`` wrote; every certificate is signed by ``ca`` unless noted."""

    directory: Path
    ca: KeyPair              # trusted by the clients and, for mutual TLS, by the server
    other_ca: KeyPair        # an unrelated CA
    server: KeyPair          # valid for localhost and 127.0.0.1
    wrong_host: KeyPair      # valid, but issued for WRONG_HOST_NAME only
    expired: KeyPair         # for localhost and 127.0.0.1, expired yesterday
    client: KeyPair          # client certificate (CN = station id)
    foreign_client: KeyPair  # client certificate signed by ``other_ca``


def make_pki(directory: Path, *, station_id: str = "CP1") -> Pki:
    """Generate a fresh PKI under ``directory`` and return the PEM paths."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1))
    expired = (now - datetime.timedelta(days=3), now - datetime.timedelta(days=1))

    ca_key, ca_cert = _ca("Test CSMS CA", valid)
    other_key, other_cert = _ca("Unrelated CA", valid)

    def leaf(name: str, subject: str, sans: tuple[str, ...], validity, *, client=False,
             issuer=(ca_key, ca_cert)) -> KeyPair:
        key, cert = _leaf(subject, sans, validity, issuer, client=client)
        return _write(directory, name, key, cert)

    return Pki(
        directory=directory,
        ca=_write(directory, "ca", ca_key, ca_cert),
        other_ca=_write(directory, "other-ca", other_key, other_cert),
        server=leaf("server", "localhost", SERVER_NAMES, valid),
        wrong_host=leaf("wrong-host", WRONG_HOST_NAME, (WRONG_HOST_NAME,), valid),
        expired=leaf("expired", "localhost", SERVER_NAMES, expired),
        client=leaf("client", station_id, (), valid, client=True),
        foreign_client=leaf("foreign-client", station_id, (), valid, client=True,
                            issuer=(other_key, other_cert)),
    )


def server_ssl_context(identity: KeyPair, *, ca: KeyPair | None = None,
                       require_client_cert: bool = False) -> ssl.SSLContext:
    """A server-side context presenting ``identity``; verifies clients against ``ca`` if asked."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(identity.cert, identity.key)
    if require_client_cert:
        if ca is None:
            raise ValueError("require_client_cert needs the ca that signs client certificates")
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(ca.cert)
    return context


def _ca(common_name: str, validity) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(common_name: str, sans: tuple[str, ...], validity, issuer, *, client: bool):
    issuer_key, issuer_cert = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(subject, issuer_cert.subject, key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in sans]), critical=False)
    return key, builder.sign(issuer_key, hashes.SHA256())


def _builder(subject: x509.Name, issuer: x509.Name, public_key, validity):
    not_before, not_after = validity
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write(directory: Path, name: str, key, cert: x509.Certificate) -> KeyPair:
    pair = KeyPair(cert=directory / f"{name}.pem", key=directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    pair.key.chmod(0o600)
    return pair
