"""OCPP 1.6 security extension, certificate management: InstallCertificate, DeleteCertificate,
GetInstalledCertificateIds over the core's certificate store, and the station's own certificate
(ExtendedTriggerMessage SignChargePointCertificate -> SignCertificate, CertificateSigned)."""

from __future__ import annotations

import logging

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from agent.core.certificates import CSMS_ROOT, MANUFACTURER_ROOT

#: 1.6 CertificateUse -> the store's neutral use type.
USE_FROM_16 = {"CentralSystemRootCertificate": CSMS_ROOT, "ManufacturerRootCertificate": MANUFACTURER_ROOT}
_HASH_KEYS = ("hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial_number")

log = logging.getLogger("agent.ocpp16")


class CertificateHandlers16:
    """Mixed into the 1.6 adapter: the store is ``self.core.certificates``, the station's own certificate
    ``self.core.station_certificate`` (absent or None: NotSupported)."""

    def _certificates(self):
        """The core's store; a CALLERROR NotSupported until the composition root provides one."""
        store = getattr(self.core, "certificates", None) if self.core is not None else None
        if store is None:
            raise NotSupportedError(description="no certificate store")
        return store

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, **_):
        """InstallCertificate: Rejected for an invalid, non-CA or expired certificate or a full store."""
        status = self._certificates().install(certificate, USE_FROM_16[certificate_type])
        return call_result.InstallCertificate(status=status)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict, **_):
        """DeleteCertificate: Accepted, NotFound, or Failed when the file cannot be removed."""
        return call_result.DeleteCertificate(status=self._certificates().delete(certificate_hash_data))

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str, **_):
        """GetInstalledCertificateIds: the hash data of the installed certificates of that type."""
        found = self._certificates().list([USE_FROM_16[certificate_type]])
        if not found:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data=[{key: item[key] for key in _HASH_KEYS} for item in found])

    # ------------------------------------------------------------ the station's own certificate

    def _station_certificate(self):
        """The core's station certificate (agent.core.station_certificate), or None without one."""
        return getattr(self.core, "station_certificate", None) if self.core is not None else None

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **_):
        """CertificateSigned: Accepted when the chain fits the pending request; used from the next connection."""
        station_certificate = self._station_certificate()
        if station_certificate is None:
            raise NotSupportedError(description="no station certificate")
        status = station_certificate.certificate_signed(certificate_chain)
        if status == "Rejected":
            self.outbox_changed()  # a security event may be waiting
        return call_result.CertificateSigned(status=status)

    async def _extended_trigger_SignChargePointCertificate(self, connector_id: int | None) -> None:  # noqa: N802
        station_certificate = self._station_certificate()
        if station_certificate is None:
            log.warning("SignChargePointCertificate triggered, but this station has no certificate service")
            return
        await station_certificate.request_signature(self._sign_certificate)

    async def _sign_certificate(self, csr: str) -> str:
        """SignCertificate with a PEM request; the CSMS's status."""
        return (await self.call(call.SignCertificate(csr=csr))).status
