"""Firmware signatures (OCPP 1.6 SignedUpdateFirmware, 2.0.1 UpdateFirmware): who may sign, and the check.

`cryptography` is imported only inside the functions: the agent stays small in
memory until a signed update actually arrives.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from agent.core.management.certificates import MANUFACTURER_ROOT, issued_by

log = logging.getLogger("agent.core.firmware")

MAX_INTERMEDIATES = 4  # a longer chain below a manufacturer root is a malformed bundle
CHUNK = 64 * 1024


def manufacturer_roots(certificates) -> list:
    """The installed ManufacturerRootCertificates of a CertificateStore (x509 objects); [] without any."""
    bundle = certificates.ca_bundle([MANUFACTURER_ROOT]) if certificates is not None else None
    if bundle is None:
        return []
    from cryptography import x509

    try:
        return x509.load_pem_x509_certificates(bundle.read_bytes())
    except (OSError, ValueError) as exc:
        log.error("cannot read the manufacturer roots in %s: %s", bundle, exc)
        return []


def signing_certificate_problem(pem: str, roots: list, *, now: float) -> str | None:
    """Why ``pem`` may not sign firmware, or None when it chains to one of ``roots``.

    ``pem`` is the signing certificate, optionally followed by intermediate CAs.
    Only expiry is checked, as for installed roots: "not yet valid" may just mean
    our clock is not synchronised yet.
    """
    from cryptography import x509

    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return "not a PEM certificate"
    current, intermediates = chain[0], chain[1:]
    if not _may_sign(current):
        return "its key usage does not allow signatures"
    for _ in range(MAX_INTERMEDIATES + 1):
        if current.not_valid_after_utc.timestamp() < now:
            return f"{current.subject.rfc4514_string()} expired"
        if current in roots:
            return None  # signed with a root itself
        if any(issued_by(current, root) for root in roots if root.not_valid_after_utc.timestamp() >= now):
            return None
        issuer = next((ca for ca in intermediates if _is_ca(ca) and issued_by(current, ca)), None)
        if issuer is None:
            return "it does not chain to an installed ManufacturerRootCertificate"
        current = issuer
    return "its chain is too long"


def signature_valid(image: Path, signature_b64: str, certificate_pem: str) -> bool:
    """True when ``signature_b64`` signs the file's SHA-256 with the certificate's key.

    RSA (PKCS#1 v1.5) and ECDSA keys; the file is hashed in chunks, so an image
    larger than the free memory can be checked. Blocking: run it in a thread.
    """
    import base64

    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

    try:
        signature = base64.b64decode("".join(signature_b64.split()), validate=True)  # CSMSs may wrap lines
        key = x509.load_pem_x509_certificates(certificate_pem.encode())[0].public_key()
    except ValueError:  # binascii.Error is one
        return False
    digest = hashlib.sha256()
    with open(image, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest.digest(), padding.PKCS1v15(), prehashed)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest.digest(), ec.ECDSA(prehashed))
        else:
            log.error("firmware signing key type %s is not supported", type(key).__name__)
            return False
    except InvalidSignature:
        return False
    return True


def _is_ca(cert) -> bool:
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _may_sign(cert) -> bool:
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        return True  # no restriction stated
