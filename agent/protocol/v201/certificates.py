"""OCPP 2.0.1 certificate management (M03 GetInstalledCertificateIds, M04 DeleteCertificate,
M05 InstallCertificate) over the core's certificate store, and the station's own certificate
(A02/A03: TriggerMessage SignChargingStationCertificate -> SignCertificate, CertificateSigned)."""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from agent.protocol.common.certificates import HASH_KEYS, CertificateAccess

#: The only certificate this station signs for itself: no ISO 15118, so no V2GCertificate.
STATION_CERTIFICATE = "ChargingStationCertificate"


class CertificateHandlers201(CertificateAccess):
    """Mixed into the 2.0.1 adapter: the store is ``self.core.certificates`` (absent or None: NotSupported).

    2.0.1 use types are the store's own names, so nothing is translated. The station's own
    certificate is ``self.core.station_certificate``.
    """

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str, **_):
        """InstallCertificate: Rejected for an invalid, non-CA or expired certificate or a full store."""
        return call_result.InstallCertificate(status=self._certificates().install(certificate, certificate_type))

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict, **_):
        """DeleteCertificate: Accepted, NotFound, or Failed when the file cannot be removed."""
        return call_result.DeleteCertificate(status=self._certificates().delete(certificate_hash_data))

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: list[str] | None = None, **_):
        """GetInstalledCertificateIds: hash data of the installed certificates, all or of the listed types."""
        found = self._certificates().list(certificate_type or None)
        if not found:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        chain = [{"certificate_type": item["use"],
                  "certificate_hash_data": {key: item[key] for key in HASH_KEYS}} for item in found]
        return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=chain)

    # ------------------------------------------------------------ A02/A03: the station's own certificate

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str, certificate_type: str = STATION_CERTIFICATE, **_):
        """CertificateSigned: Accepted when the chain fits the pending request; used from the next connection.

        A V2GCertificate is Rejected: this station has no ISO 15118 and never asks for one.
        """
        if certificate_type != STATION_CERTIFICATE:
            return call_result.CertificateSigned(status="Rejected")
        return call_result.CertificateSigned(status=self._accept_chain(certificate_chain))

    async def _trigger_SignChargingStationCertificate(self, evse_id: int | None) -> None:  # noqa: N802
        await self._request_station_signature("SignChargingStationCertificate")

    async def _sign_certificate(self, csr: str) -> str:
        """SignCertificate for the station certificate; the CSMS's status."""
        return (await self.call(call.SignCertificate(csr=csr, certificate_type=STATION_CERTIFICATE))).status
