"""OCPP 2.0.1 block L, firmware management: UpdateFirmware (L01 signed, L02 unsigned) over the core's job.

The parallel of ``v16_firmware``'s SignedUpdateFirmware: the same FirmwareType and
the same core job; in 2.0.1 the signing certificate and signature are optional,
and without them the update is installed unverified. Statuses go out as
FirmwareStatusNotification with the request's requestId.

After an install that rebooted the board, the next BootNotification gives the
reason FirmwareUpdate, and Installed is reported once registered.
"""

from __future__ import annotations

import logging

from ocpp.routing import on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from agent.core.management import firmware as fw
from agent.core.management.firmware import firmware_job
from agent.protocol.common.boot import FIRMWARE_UPDATE
from agent.protocol.common.boot import NEXT_REASON_KEY as BOOT_REASON_KEY  # the boot reason a restart gives
from agent.protocol.common.firmware import FirmwareJobHandlers

log = logging.getLogger("agent.ocpp201")


class FirmwareHandlers201(FirmwareJobHandlers):
    """Mixed into the 2.0.1 adapter."""

    @on(Action.update_firmware)
    def on_update_firmware(self, request_id: int, firmware: dict, retries: int | None = None,
                           retry_interval: int | None = None, **_):
        """UpdateFirmware: Accepted, AcceptedCanceled, Rejected or InvalidCertificate; statuses follow."""
        status = self._schedule_firmware(firmware, request_id=request_id, retries=retries,
                                         retry_interval=retry_interval)
        return call_result.UpdateFirmware(status=status)

    def _firmware_status(self, status: str, request_id: int | None):
        """The job's report callback: FirmwareStatusNotification; returns the sending task."""
        self.outbox_changed()  # a verdict may have come with a security event
        request = call.FirmwareStatusNotification(status=status, request_id=request_id)
        return self.spawn(self._notify(request), name="firmware-status")

    async def _trigger_FirmwareStatusNotification(self, evse_id: int | None) -> None:  # noqa: N802
        # requestId only while an update runs: the schema lets a triggered report without one leave it out
        job = self.core.firmware if self.core is not None else None
        await self._notify(call.FirmwareStatusNotification(
            status=job.status if job else fw.IDLE, request_id=job.request_id if job else None))

    # ------------------------------------------------------------ connection (the rest: FirmwareJobHandlers)

    async def boot(self) -> None:
        """Register; the reason is FirmwareUpdate when an install was under way as the agent stopped."""
        job = firmware_job(self.core, clock=self.clock.time)
        if job is not None and job.rebooted_while_installing():
            self.core.store.put(BOOT_REASON_KEY, FIRMWARE_UPDATE)
        await super().boot()
