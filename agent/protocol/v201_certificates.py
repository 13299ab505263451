"""OCPP 2.0.1 certificate management (M03 GetInstalledCertificateIds, M04 DeleteCertificate,
M05 InstallCertificate) over the core's certificate store."""

from __future__ import annotations

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

_HASH_KEYS = ("hash_algorithm", "issuer_name_hash", "issuer_key_hash", "serial_number")


class CertificateHandlers201:
    """Mixed into the 2.0.1 adapter: the store is ``self.core.certificates`` (absent or None: NotSupported).

    2.0.1 use types are the store's own names, so nothing is translated.
    """

    def _certificates(self):
        """The core's store; a CALLERROR NotSupported until the composition root provides one."""
        store = getattr(self.core, "certificates", None) if self.core is not None else None
        if store is None:
            raise NotSupportedError(description="no certificate store")
        return store

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
                  "certificate_hash_data": {key: item[key] for key in _HASH_KEYS}} for item in found]
        return call_result.GetInstalledCertificateIds(status="Accepted", certificate_hash_data_chain=chain)
