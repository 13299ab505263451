"""The station's own TLS client certificate (security profile 3): key, signing request, install.

Version-neutral (OCPP 1.6 security extension A02/A03 and 2.0.1 block A): the
adapters send SignCertificate through a callable given to ``request_signature``
and hand CertificateSigned's chain to ``certificate_signed``. The session asks
``client_files()`` for each new connection, so an installed certificate is used
from the next connection on; the current one is never interrupted.

Files, in one directory readable by the agent only:

- ``pending.key``: the private key of the outstanding signing request. It is
  kept on disk so a CertificateSigned that arrives after a reboot still matches.
- ``station.<fingerprint>.crt`` and ``.key``: an installed chain and its key.
- ``current``: the stem of the pair in use. Replacing this small file is the one
  atomic switch: before the rename the previous pair is used, after it the new
  one, so a crash never pairs a certificate with the wrong key.

`cryptography` is imported inside the methods that need it: the agent stays
small in memory until a certificate is actually requested or received.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Awaitable, Callable

from agent.core.management.certificates import CSMS_ROOT, issued_by
from agent.core.management.security_events import INVALID_STATION_CERTIFICATE, record_security_event
from agent.errors import ProtocolFailure

log = logging.getLogger("agent.station_certificate")

_PENDING = "pending.key"
_CURRENT = "current"
_PREFIX = "station."
#: A CA commonly stamps notBefore with its own "now"; a station clock a little behind must not
#: turn a fresh certificate away. Beyond this it really is not valid yet.
NOT_BEFORE_LEEWAY_S = 300.0
_TECH_INFO_MAX = 255  # SecurityEventNotification techInfo is at most 255 characters

#: send(csr_pem) -> the CSMS's SignCertificate status ("Accepted" or "Rejected").
SignSender = Callable[[str], Awaitable[str]]


class StationCertificate:
    """The client certificate the station presents in security profile 3, renewed through the CSMS.

    ``settings`` is read for organization_name, cert_signing_wait_minimum_s,
    cert_signing_repeat_times and certificate_signed_max_chain_size (a plain
    mapping works, e.g. in tests). ``certificates`` is the CA store: when it holds
    a CSMS root, a new chain must lead to one. ``store`` receives the security
    events; ``clock`` gives the (CSMS-synchronised) time in seconds.
    """

    def __init__(self, directory: Path, *, station_id: str, settings, store=None, certificates=None,
                 clock: Callable[[], float] = time.time):
        self.directory = Path(directory)
        self.station_id = station_id
        self.settings = settings
        self.store = store
        self.certificates = certificates
        self.clock = clock
        self._signed = asyncio.Event()
        self._round: asyncio.Task | None = None

    def __repr__(self) -> str:
        installed = self.client_files()
        return f"<StationCertificate {self.station_id} installed={installed[0] if installed else None}>"

    # ------------------------------------------------------------ for the transport

    def client_files(self) -> tuple[str, str] | None:
        """(certificate chain path, key path) of the installed certificate, or None when there is none.

        Cheap (no `cryptography`): the session calls it before every connection.
        """
        try:
            stem = (self.directory / _CURRENT).read_text().strip()
        except OSError:
            return None
        cert, key = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        if not stem.startswith(_PREFIX) or not (cert.is_file() and key.is_file()):
            return None
        return str(cert), str(key)

    # ------------------------------------------------------------ signing

    def signing_request(self) -> str:
        """A PEM PKCS#10 request for the pending key (made on first use): CN = station id, O = organization."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.serialization import Encoding
        from cryptography.x509.oid import NameOID

        key = self._pending_key() or self._new_pending_key()
        attributes = []
        organization = str(self.settings["organization_name"] or "")
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        else:
            # An empty O= is not a valid X.509 name; the CSMS may still sign, so ask anyway.
            log.warning("organization_name (CpoName / SecurityCtrlr.OrganizationName) is empty: "
                        "the signing request has no O=")
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, self.station_id))
        request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)).sign(
            key, hashes.SHA256())
        return request.public_bytes(Encoding.PEM).decode()

    async def request_signature(self, send: SignSender) -> bool:
        """Send SignCertificate and wait for CertificateSigned; True once a certificate is installed.

        Without a CertificateSigned within cert_signing_wait_minimum_s the request
        is sent again, the wait doubling each time, up to cert_signing_repeat_times
        more times. The same key is asked for every time, so a late answer to an
        earlier request still matches. A request the CSMS rejects ends the round;
        one that was not delivered counts as an attempt. A new round (a new
        trigger) replaces one still waiting.
        """
        previous, self._round = self._round, asyncio.current_task()
        if previous is not None and previous is not self._round and not previous.done():
            previous.cancel()
        try:
            self._signed.clear()
            csr = self.signing_request()
            wait = float(self.settings["cert_signing_wait_minimum_s"])
            for attempt in range(1 + max(0, int(self.settings["cert_signing_repeat_times"]))):
                if await self._send(send, csr) == "Rejected":
                    log.warning("the CSMS rejected the station certificate signing request")
                    return False
                try:
                    await asyncio.wait_for(self._signed.wait(), wait)
                    return True
                except asyncio.TimeoutError:
                    log.info("no CertificateSigned within %g s (attempt %d)", wait, attempt + 1)
                    wait *= 2
            log.warning("no CertificateSigned arrived; giving up until the CSMS asks again")
            return False
        finally:
            if self._round is asyncio.current_task():
                self._round = None

    async def _send(self, send: SignSender, csr: str) -> str:
        try:
            return str(await send(csr))
        except ProtocolFailure as exc:
            log.warning("SignCertificate not delivered: %s", exc)
            return "Failed"

    # ------------------------------------------------------------ CertificateSigned

    def certificate_signed(self, chain_pem: str) -> str:
        """CertificateSigned: "Accepted" once the chain is installed (used from the next connection), else "Rejected".

        A refused chain is recorded as an InvalidChargingStationCertificate security event.
        """
        problem = self.check_chain(chain_pem)
        if problem is not None:
            log.warning("station certificate rejected: %s", problem)
            if self.store is not None:
                record_security_event(self.store, INVALID_STATION_CERTIFICATE, timestamp=self.clock(),
                                      tech_info=problem[:_TECH_INFO_MAX])
            return "Rejected"
        try:
            self._install(chain_pem)
        except OSError as exc:
            log.error("cannot install the station certificate: %s", exc)
            return "Rejected"
        self._signed.set()
        return "Accepted"

    def check_chain(self, chain_pem: str) -> str | None:
        """Why ``chain_pem`` (leaf first) cannot become the station certificate, or None when it can."""
        from cryptography import x509

        data = chain_pem.encode() if isinstance(chain_pem, str) else b""
        limit = int(self.settings["certificate_signed_max_chain_size"])
        if len(data) > limit:
            return f"chain of {len(data)} bytes exceeds the maximum of {limit}"
        try:
            chain = x509.load_pem_x509_certificates(data)
        except ValueError:
            return "not a PEM certificate chain"
        leaf = chain[0]
        pending = self._pending_key()
        if pending is None or _public_der(leaf.public_key()) != _public_der(pending.public_key()):
            return "the certificate is not for the key of the pending signing request"
        now = self.clock()
        if leaf.not_valid_after_utc.timestamp() < now:
            return f"the certificate expired at {leaf.not_valid_after_utc.isoformat()}"
        if leaf.not_valid_before_utc.timestamp() > now + NOT_BEFORE_LEEWAY_S:
            return f"the certificate is not valid before {leaf.not_valid_before_utc.isoformat()}"
        for cert, issuer in zip(chain, chain[1:]):
            if not issued_by(cert, issuer):
                return f"{_name(cert)} is not signed by the next certificate, {_name(issuer)}"
        roots = self._csms_roots()
        if roots and not any(issued_by(cert, root) for cert in chain for root in roots):
            return "the chain does not lead to an installed CSMS root certificate"
        return None

    # ------------------------------------------------------------ internals

    def _install(self, chain_pem: str) -> None:
        """Write the key and chain under a new name, then switch ``current`` to them, then tidy up."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.serialization import Encoding

        chain = x509.load_pem_x509_certificates(chain_pem.encode())
        stem = _PREFIX + chain[0].fingerprint(hashes.SHA256()).hex()[:16]
        key_text = (self.directory / _PENDING).read_text()
        _write_atomically(self.directory / f"{stem}.key", key_text, 0o600)
        _write_atomically(self.directory / f"{stem}.crt",
                          "".join(c.public_bytes(Encoding.PEM).decode() for c in chain), 0o600)
        _write_atomically(self.directory / _CURRENT, stem + "\n", 0o600)
        log.info("installed station certificate %s (serial %x, valid until %s); used from the next connection",
                 _name(chain[0]), chain[0].serial_number, chain[0].not_valid_after_utc.isoformat())
        self._tidy(keep=stem)

    def _tidy(self, *, keep: str) -> None:
        """Remove the consumed pending key and the pairs no longer in use; failures only cost disk space."""
        doomed = [self.directory / _PENDING]
        doomed += [p for p in self.directory.glob(f"{_PREFIX}*") if not p.name.startswith(keep + ".")]
        for path in doomed:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot remove %s: %s", path.name, exc)

    def _pending_key(self):
        """The pending request's private key, or None when there is none (or it is unreadable)."""
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            data = (self.directory / _PENDING).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the pending key: %s", exc)
            return None
        try:
            return load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            log.warning("the pending key is unreadable; a new one is made for the next request")
            return None

    def _new_pending_key(self):
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

        key = ec.generate_private_key(ec.SECP256R1())
        self._ensure_directory()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
        _write_atomically(self.directory / _PENDING, pem, 0o600)
        return key

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # mkdir's mode is filtered by the umask

    def _csms_roots(self) -> list:
        """The installed CSMS root certificates (none without a certificate store)."""
        from cryptography import x509

        if self.certificates is None or not self.certificates.list([CSMS_ROOT]):
            return []
        bundle = self.certificates.ca_bundle([CSMS_ROOT])
        try:
            return x509.load_pem_x509_certificates(bundle.read_bytes()) if bundle else []
        except (OSError, ValueError) as exc:
            log.warning("cannot read the CSMS root certificates: %s", exc)
            return []


def _public_der(public_key) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _name(cert) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _write_atomically(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` by a complete, synced file; created with ``mode`` so a key is never readable by others."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), mode)  # open()'s mode is filtered by the umask and ignored for an old file
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
