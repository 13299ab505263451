"""OCPP 1.6 firmware updates over the core's job: UpdateFirmware (Firmware Management profile)
and SignedUpdateFirmware (security extension).

Wiring (done by the app): ``CoreServices`` carries ``firmware`` (an
``agent.core.management.firmware.FirmwareJob``, or None to have one built from ``data_dir``
and ``firmware_install_command``) and ``certificates`` (the manufacturer roots
that signing certificates must chain to). The adapter lists ``FirmwareHandlers16``
among its bases, before ``AdapterBase``.

A job started by SignedUpdateFirmware carries a requestId and reports with
SignedFirmwareStatusNotification in the core's full vocabulary; a plain
UpdateFirmware job has none and reports with FirmwareStatusNotification, whose
smaller vocabulary this module maps onto.
"""

from __future__ import annotations

import logging

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from agent.runtime.clock import unix_time
from agent.core.management import firmware as fw
from agent.core.management.firmware import FirmwareRequest
from agent.protocol.common.firmware import FirmwareJobHandlers

log = logging.getLogger("agent.ocpp16")

#: What plain FirmwareStatusNotification can say (the core may say more).
_PLAIN = frozenset({fw.DOWNLOADING, fw.DOWNLOADED, fw.DOWNLOAD_FAILED, fw.INSTALLING,
                    fw.INSTALLED, fw.INSTALLATION_FAILED, fw.IDLE})
#: A reported step outside that vocabulary: its plain word, or dropped (a scheduled download is
#: silent until it starts; InstallRebooting follows an Installing already sent).
_PLAIN_REPORT = {fw.INSTALL_VERIFICATION_FAILED: fw.INSTALLATION_FAILED}
#: The current status in plain words, for TriggerMessage.
_PLAIN_NOW = {fw.DOWNLOAD_SCHEDULED: fw.IDLE, fw.SIGNATURE_VERIFIED: fw.DOWNLOADED,
              fw.INSTALL_SCHEDULED: fw.DOWNLOADED, fw.INSTALL_REBOOTING: fw.INSTALLING}


class FirmwareHandlers16(FirmwareJobHandlers):
    """Mixed into the 1.6 adapter."""

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, retries: int | None = None,
                           retry_interval: int | None = None, **_):
        """UpdateFirmware: the reply is empty; statuses follow as FirmwareStatusNotification."""
        job = self._firmware_job()
        if job is None:
            raise NotSupportedError(description="firmware updates are not configured on this station")
        request = FirmwareRequest(location, unix_time(retrieve_date), retries=retries, retry_interval_s=retry_interval)
        answer = job.schedule(request)
        if answer == fw.REJECTED:  # 1.6 gives no way to say so
            log.warning("UpdateFirmware for %s ignored: the station cannot take it now", location)
        return call_result.UpdateFirmware()

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(self, request_id: int, firmware: dict, retries: int | None = None,
                                  retry_interval: int | None = None, **_):
        """SignedUpdateFirmware: Accepted, AcceptedCanceled, Rejected or InvalidCertificate; statuses follow."""
        status = self._schedule_firmware(firmware, request_id=request_id, retries=retries,
                                         retry_interval=retry_interval)
        return call_result.SignedUpdateFirmware(status=status)

    def _firmware_status(self, status: str, request_id: int | None):
        """The job's report callback: the message of the job's kind; the sending task (None if dropped)."""
        if request_id is not None:
            request = call.SignedFirmwareStatusNotification(status=status, request_id=request_id)
        else:
            plain = status if status in _PLAIN else _PLAIN_REPORT.get(status)
            if plain is None:
                return None
            request = call.FirmwareStatusNotification(status=plain)
        self.outbox_changed()  # a verdict may have come with a security event
        return self.spawn(self._notify(request), name="firmware-status")

    async def _trigger_FirmwareStatusNotification(self, connector_id: int | None) -> None:  # noqa: N802
        job = self.core.firmware if self.core is not None else None
        status = job.status if job else fw.IDLE
        await self._notify(call.FirmwareStatusNotification(status=_PLAIN_NOW.get(status, status)))

    async def _extended_trigger_FirmwareStatusNotification(self, connector_id: int | None) -> None:  # noqa: N802
        """ExtendedTriggerMessage's form: SignedFirmwareStatusNotification, the job's requestId while it runs."""
        job = self.core.firmware if self.core is not None else None
        await self._notify(call.SignedFirmwareStatusNotification(
            status=job.status if job else fw.IDLE, request_id=job.request_id if job else None))
