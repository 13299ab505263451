"""OCPP 1.6 security extension, certificate management: InstallCertificate, DeleteCertificate,
GetInstalledCertificateIds over the core's certificate store, and the station's own certificate
(ExtendedTriggerMessage SignChargePointCertificate -> SignCertificate, CertificateSigned)."""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from agent.core.management.certificates import CSMS_ROOT, MANUFACTURER_ROOT
from agent.protocol.common.certificates import HASH_KEYS, CertificateAccess

#: 1.6 CertificateUse -> the store's neutral use type.
USE_FROM_16 = {"CentralSystemRootCertificate": CSMS_ROOT, "ManufacturerRootCertificate": MANUFACTURER_ROOT}


class CertificateHandlers16(CertificateAccess):
    """Mixed into the 1.6 adapter: the store is ``self.core.certificates``, the station's own certificate
    ``self.core.station_certificate`` (absent or None: NotSupported)."""

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
            status="Accepted", certificate_hash_data=[{key: item[key] for key in HASH_KEYS} for item in found])

    # ------------------------------------------------------------ the station's own certificate

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, **_):
        """CertificateSigned: Accepted when the chain fits the pending request; used from the next connection."""
        return call_result.CertificateSigned(status=self._accept_chain(certificate_chain))

    async def _extended_trigger_SignChargePointCertificate(self, connector_id: int | None) -> None:  # noqa: N802
        await self._request_station_signature("SignChargePointCertificate")

    async def _sign_certificate(self, csr: str) -> str:
        """SignCertificate with a PEM request; the CSMS's status."""
        return (await self.call(call.SignCertificate(csr=csr))).status
