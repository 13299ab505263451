"""OCPP 1.6 Firmware Management profile, firmware half: UpdateFirmware over the core's job.

Wiring (done by the app): ``CoreServices`` carries ``firmware`` (an
``agent.core.firmware.FirmwareJob``, or None to have this mixin build one from
``data_dir`` and ``firmware_install_command``), ``data_dir`` (the station's data
directory) and ``config_path`` (the TOML file to include, redacted, in
diagnostics). The adapter lists ``FirmwareHandlers16`` among its bases, before
``AdapterBase``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from agent.core.firmware import FirmwareJob, transaction_running

log = logging.getLogger("agent.ocpp16")


def _timestamp(value: str | None) -> float | None:
    """An OCPP dateTime as unix time; a time without offset is taken as UTC, as OCPP intends."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class FirmwareHandlers16:
    """Mixed into the 1.6 adapter."""

    # ------------------------------------------------------------ firmware

    def _firmware_job(self) -> FirmwareJob | None:
        """The core's job, built on first use when the app gave a data directory but no job."""
        core = self.core
        job = getattr(core, "firmware", None)
        if job is None and getattr(core, "data_dir", None) is not None:
            job = FirmwareJob(core.store, core.data_dir,
                              install_command=getattr(core, "firmware_install_command", None),
                              busy=transaction_running(core.station), clock=self.clock.time)
            core.firmware = job  # kept on the core: the job outlives this connection
        return job

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, retries: int | None = None,
                           retry_interval: int | None = None, **_):
        """UpdateFirmware: the reply is empty; statuses follow as FirmwareStatusNotification."""
        job = self._firmware_job()
        if job is None:
            raise NotSupportedError(description="firmware updates are not configured on this station")
        job.on_status = self._firmware_status
        job.schedule(location, _timestamp(retrieve_date), retries, retry_interval)
        return call_result.UpdateFirmware()

    def _firmware_status(self, status: str) -> None:
        self.spawn(self._notify(call.FirmwareStatusNotification(status=status)), name="firmware-status")

    async def _trigger_FirmwareStatusNotification(self, connector_id: int | None) -> None:  # noqa: N802
        job = getattr(self.core, "firmware", None)
        await self._notify(call.FirmwareStatusNotification(status=job.status if job else "Idle"))

    # ------------------------------------------------------------ connection

    async def on_accepted(self) -> None:
        """Registered: take over the job's statuses and report an install that rebooted us."""
        await super().on_accepted()
        if self.core is None:
            return
        job = self._firmware_job()
        if job is not None:
            job.on_status = self._firmware_status
            job.resume()

    def on_disconnected(self) -> None:
        """Stop sending firmware statuses through a dead connection."""
        job = getattr(self.core, "firmware", None)
        if job is not None and job.on_status == self._firmware_status:
            job.on_status = None
        super().on_disconnected()
