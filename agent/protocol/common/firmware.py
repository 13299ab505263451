"""What the 1.6 (SignedUpdateFirmware) and 2.0.1 (UpdateFirmware) firmware handlers share: the
core's job for this connection, and a FirmwareType (the same in both) turned into the core's request."""

from __future__ import annotations

from agent.runtime.clock import unix_time
from agent.core.management import firmware as fw
from agent.core.management.firmware import FirmwareRequest, firmware_job


def firmware_request(firmware_type: dict, *, request_id: int | None, retries: int | None,
                     retry_interval: int | None) -> FirmwareRequest:
    """A FirmwareType (the 1.6 security extension's and 2.0.1's are the same) as the core's request."""
    # the adapter base has checked the date-time formats against the schema already
    return FirmwareRequest(location=firmware_type["location"],
                           retrieve_at=unix_time(firmware_type["retrieve_date_time"]),
                           install_at=unix_time(firmware_type.get("install_date_time")),
                           retries=retries, retry_interval_s=retry_interval, request_id=request_id,
                           signing_certificate=firmware_type.get("signing_certificate"),
                           signature=firmware_type.get("signature"))


class FirmwareJobHandlers:
    """Mixed into each version's firmware handlers, which provide ``_firmware_status(status, request_id)``."""

    def _firmware_job(self):
        """The core's job, taking over its reports for this connection; None when the station has none."""
        job = firmware_job(self.core, clock=self.clock.time)
        if job is not None:
            job.attach(self._firmware_status)
        return job

    def _schedule_firmware(self, firmware: dict, *, request_id: int, retries: int | None,
                           retry_interval: int | None) -> str:
        """Hand a FirmwareType request to the job: Accepted, AcceptedCanceled, Rejected or InvalidCertificate."""
        job = self._firmware_job()
        if job is None:
            return fw.REJECTED
        status = job.schedule(firmware_request(firmware, request_id=request_id, retries=retries,
                                               retry_interval=retry_interval))
        self.outbox_changed()  # an invalid certificate is a security event: send it now
        return status

    async def on_accepted(self) -> None:
        """Registered: take over the job's statuses and report an install that rebooted us."""
        await super().on_accepted()
        job = self._firmware_job()
        if job is not None:
            job.resume()

    def on_disconnected(self) -> None:
        """Stop sending firmware statuses through a dead connection."""
        job = self.core.firmware if self.core is not None else None
        if job is not None:
            job.detach(self._firmware_status)
        super().on_disconnected()
