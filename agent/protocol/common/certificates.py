"""What the 1.6 (security extension) and 2.0.1 (block M) certificate handlers share: access to the
core's certificate store and station certificate, accepting a signed chain, and asking for a signature.
Each version keeps its own messages; the work behind them is here once."""

from __future__ import annotations

import logging

from ocpp.exceptions import NotSupportedError

log = logging.getLogger("agent.certificates")

#: The CertificateHashData fields, as both versions report them.
HASH_KEYS = ("hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial_number")


class CertificateAccess:
    """Mixed into each version's certificate handlers, which provide ``_sign_certificate(csr) -> status``."""

    def _certificates(self):
        """The core's store; a CALLERROR NotSupported until the composition root provides one."""
        store = self.core.certificates if self.core is not None else None
        if store is None:
            raise NotSupportedError(description="no certificate store")
        return store

    def _station_certificate(self):
        """The core's station certificate (agent.core.management.station_certificate), or None without one."""
        return self.core.station_certificate if self.core is not None else None

    def _accept_chain(self, certificate_chain: str) -> str:
        """CertificateSigned's work: "Accepted" once installed (used from the next connection), else "Rejected"."""
        station_certificate = self._station_certificate()
        if station_certificate is None:
            raise NotSupportedError(description="no station certificate")
        status = station_certificate.certificate_signed(certificate_chain)
        if status == "Rejected":
            self.outbox_changed()  # wake the outbox for the invalid-certificate security event
        return status

    async def _request_station_signature(self, trigger: str) -> None:
        """A triggered SignCertificate round (repeated while no CertificateSigned comes)."""
        station_certificate = self._station_certificate()
        if station_certificate is None:
            log.warning("%s triggered, but this station has no certificate service", trigger)
            return
        await station_certificate.request_signature(self._sign_certificate)
