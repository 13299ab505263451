"""OCPP 1.6 security extension, certificate management: InstallCertificate, DeleteCertificate,
GetInstalledCertificateIds over the core's certificate store."""

from __future__ import annotations

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from agent.core.certificates import CSMS_ROOT, MANUFACTURER_ROOT

#: 1.6 CertificateUse -> the store's neutral use type.
USE_FROM_16 = {"CentralSystemRootCertificate": CSMS_ROOT, "ManufacturerRootCertificate": MANUFACTURER_ROOT}
_HASH_KEYS = ("hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial_number")


class CertificateHandlers16:
    """Mixed into the 1.6 adapter: the store is ``self.core.certificates`` (absent or None: NotSupported)."""

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
