"""Installed CA certificates (OCPP 1.6 security extension, 2.0.1 block M), one PEM file each.

Use types are stored under protocol-neutral names (the 2.0.1 spellings); the
adapters translate their version's names, so a 1.6 CentralSystemRootCertificate
and a 2.0.1 CSMSRootCertificate are the same thing here.

`cryptography` is imported inside the functions that need it: the agent stays
small in memory until a certificate message actually arrives.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Callable, Iterable

log = logging.getLogger("agent.certificates")

CSMS_ROOT = "CSMSRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"
V2G_ROOT = "V2GRootCertificate"
MO_ROOT = "MORootCertificate"
V2G_CHAIN = "V2GCertificateChain"
USES = frozenset({CSMS_ROOT, MANUFACTURER_ROOT, V2G_ROOT, MO_ROOT, V2G_CHAIN})

DEFAULT_MAX_COUNT = 20
_HASHES = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_SUFFIX = ".pem"  # certificate files are "<use>.<sha256 fingerprint>.pem"; bundles end in ".crt"


class CertificateStore:
    """CA certificates in ``directory``, each with its use type.

    Every certificate is one file named after its use and SHA-256 fingerprint, so
    a re-install is recognised without an index and a crash never leaves a half
    index behind (files are written to a temporary name, then renamed).
    """

    def __init__(self, directory: Path, *, max_count: int = DEFAULT_MAX_COUNT,
                 clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.max_count = max_count
        self.clock = clock

    # ------------------------------------------------------------ commands

    def install(self, pem: str, use: str) -> str:
        """Install one CA certificate: "Accepted", "Rejected" (invalid, not a CA, expired, full) or "Failed"."""
        if use not in USES:
            return "Rejected"
        cert = self._parse_ca(pem)
        if cert is None:
            return "Rejected"
        path = self.directory / f"{use}.{_fingerprint(cert)}{_SUFFIX}"
        if path.exists():
            return "Accepted"  # the same certificate for the same use: nothing to add
        if len(self._files()) >= self.max_count:
            log.warning("certificate store full (%d): %s rejected", self.max_count, use)
            return "Rejected"
        try:
            self._ensure_directory()
            _write_atomically(path, _pem(cert))
        except OSError as exc:
            log.error("cannot store a %s: %s", use, exc)
            return "Failed"
        log.info("installed %s %s", use, cert.subject.rfc4514_string())
        return "Accepted"

    def delete(self, hash_data: dict) -> str:
        """Delete every installed certificate matching ``hash_data``: "Accepted", "NotFound" or "Failed"."""
        loaded = self._load()
        others = [cert for _, _, cert in loaded]
        matches = [path for path, _, cert in loaded if self._matches(cert, hash_data, others)]
        if not matches:
            return "NotFound"
        try:
            for path in matches:
                path.unlink()
        except OSError as exc:
            log.error("cannot delete %s: %s", path, exc)
            return "Failed"
        log.info("deleted %d certificate file(s)", len(matches))
        return "Accepted"

    # ------------------------------------------------------------ queries

    def list(self, uses: Iterable[str] | None = None) -> list[dict]:
        """Hash data (SHA256) and use of the installed certificates, all of them or of ``uses``."""
        wanted = set(uses) if uses else None
        loaded = self._load()
        return [{**self._hash_data(cert, [c for _, _, c in loaded]), "use": use}
                for _, use, cert in loaded if wanted is None or use in wanted]

    def ca_bundle(self, uses: Iterable[str], *, extra: str | None = None) -> Path | None:
        """Write the PEMs of ``uses`` into one file (e.g. TLS trust for the CSMS); None when there are none.

        ``extra``: a PEM file to include too (the config file's CA), when there is anything installed.
        """
        uses = sorted(set(uses))
        paths = [path for path in self._files() if _use_of(path) in uses]
        if not paths:
            return None
        bundle = self.directory / f"bundle-{'+'.join(uses)}.crt"
        try:
            extra_text = Path(extra).read_text() if extra else ""
            if extra_text and not extra_text.endswith("\n"):
                extra_text += "\n"
            _write_atomically(bundle, extra_text + "".join(path.read_text() for path in paths))
        except OSError as exc:
            log.error("cannot write %s: %s", bundle, exc)
            return None
        return bundle

    # ------------------------------------------------------------ internals

    def _parse_ca(self, pem: str):
        """The certificate if ``pem`` holds exactly one valid, unexpired CA certificate, else None."""
        from cryptography import x509

        if not isinstance(pem, str) or pem.count(_PEM_BEGIN) != 1:
            return None
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except (ValueError, x509.ExtensionNotFound):
            return None
        if not constraints.ca:
            return None
        # Only expiry is checked: "not yet valid" may just mean our clock is not synchronised yet.
        if cert.not_valid_after_utc.timestamp() < self.clock():
            return None
        return cert

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o750)  # mkdir's mode is filtered by the umask

    def _files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(path for path in self.directory.glob(f"*{_SUFFIX}") if _use_of(path) in USES)

    def _load(self) -> list[tuple[Path, str, object]]:
        """(path, use, certificate) of every readable certificate file; broken ones are logged and skipped."""
        from cryptography import x509

        loaded = []
        for path in self._files():
            try:
                loaded.append((path, _use_of(path), x509.load_pem_x509_certificate(path.read_bytes())))
            except (OSError, ValueError) as exc:
                log.warning("skipping unreadable certificate %s: %s", path, exc)
        return loaded

    def _hash_data(self, cert, others, algorithm: str = "SHA256") -> dict:
        """OCPP CertificateHashData: hashes of the issuer's DER name and public key, and the serial in hex."""
        digest = _HASHES[algorithm]
        issuer = _issuer_of(cert, others)
        return {
            "hash_algorithm": algorithm,
            "issuer_name_hash": digest(cert.issuer.public_bytes()).hexdigest(),
            "issuer_key_hash": digest(_key_bits(issuer.public_key())).hexdigest(),
            "serial_number": format(cert.serial_number, "x"),
        }

    def _matches(self, cert, hash_data: dict, others) -> bool:
        algorithm = str(hash_data.get("hash_algorithm", "SHA256"))
        if algorithm not in _HASHES:
            return False
        mine = self._hash_data(cert, others, algorithm)
        return (mine["issuer_name_hash"] == str(hash_data.get("issuer_name_hash", "")).lower()
                and mine["issuer_key_hash"] == str(hash_data.get("issuer_key_hash", "")).lower()
                and mine["serial_number"] == _normal_serial(hash_data.get("serial_number", "")))


def issued_by(cert, issuer) -> bool:
    """True when ``issuer`` names and signed ``cert`` (a self-signed root issues itself)."""
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _issuer_of(cert, candidates):
    """The certificate that issued ``cert``: itself when self-signed, else an installed one with that subject.

    An intermediate CA whose issuer is not installed falls back to its own key: the
    issuer's key is unknown here. Roots (what InstallCertificate installs) are self-signed.
    """
    if cert.issuer == cert.subject:
        return cert
    return next((c for c in candidates if c.subject == cert.issuer), cert)


def _key_bits(public_key) -> bytes:
    """The contents of the SubjectPublicKeyInfo BIT STRING, which OCPP's issuerKeyHash hashes.

    RSA: the PKCS#1 RSAPublicKey DER; EC: the X9.62 uncompressed point; Ed25519/Ed448: the raw key.
    These are exactly the BIT STRING contents, as in an OCSP CertID's issuerKeyHash.
    """
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _fingerprint(cert) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


def _pem(cert) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.PEM).decode()


def _use_of(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _normal_serial(serial) -> str:
    """Lowercase hex without leading zeros (CSMSs differ in how they write the serial)."""
    return str(serial).strip().lower().lstrip("0") or "0"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)
