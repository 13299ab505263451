"""OCPP 1.6 Firmware Management profile: UpdateFirmware and GetDiagnostics over the core's jobs.

Wiring (done by the app): ``CoreServices`` carries ``firmware`` (an
``agent.core.firmware.FirmwareJob``, or None to have this mixin build one from
``data_dir`` and ``firmware_install_command``), ``data_dir`` (the station's data
directory) and ``config_path`` (the TOML file to include, redacted, in
diagnostics). The adapter lists ``FirmwareHandlers16`` among its bases, before
``AdapterBase``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from pathlib import Path

from ocpp.exceptions import NotSupportedError
from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from agent.core import diagnostics
from agent.core.firmware import FirmwareJob, transaction_running
from agent.errors import CallAborted, CallTimeout, ConnectionLost
from agent.protocol.base import CallErrorReceived, InvalidResponse

log = logging.getLogger("agent.ocpp16")


def _timestamp(value: str | None) -> float | None:
    """An OCPP dateTime as unix time; a time without offset is taken as UTC, as OCPP intends."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


class FirmwareHandlers16:
    """Mixed into the 1.6 adapter."""

    _diagnostics_status = diagnostics.IDLE
    _diagnostics_file: str | None = None

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

    # ------------------------------------------------------------ diagnostics

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, retries: int | None = None, retry_interval: int | None = None,
                           start_time: str | None = None, stop_time: str | None = None, **_):
        """GetDiagnostics: answer with the file name at once; the archive is built and uploaded after."""
        if getattr(self.core, "data_dir", None) is None:
            return call_result.GetDiagnostics()  # no file name: nothing will be uploaded
        self._diagnostics_file = diagnostics.archive_name(self.id, self.clock.time())
        return call_result.GetDiagnostics(file_name=self._diagnostics_file)

    @after(Action.get_diagnostics)
    async def after_get_diagnostics(self, location: str, retries: int | None = None,
                                    retry_interval: int | None = None, start_time: str | None = None,
                                    stop_time: str | None = None, **_):
        """Build the archive (in a thread), then upload it, reporting each step."""
        name, self._diagnostics_file = self._diagnostics_file, None
        if name is None:
            return
        await self._diagnostics_status_changed(diagnostics.UPLOADING)
        try:
            path = await asyncio.to_thread(self._build_diagnostics, name, _timestamp(start_time),
                                           _timestamp(stop_time))
        except OSError as exc:
            log.error("diagnostics archive failed: %s", exc)
            await self._diagnostics_status_changed(diagnostics.UPLOAD_FAILED)
            return
        try:
            ok = await diagnostics.upload_with_retries(path, location, retries=retries or 1,
                                                       retry_interval_s=retry_interval or 0)
        finally:
            path.unlink(missing_ok=True)  # the CSMS has it, or will ask again: don't fill the disk
        await self._diagnostics_status_changed(diagnostics.UPLOADED if ok else diagnostics.UPLOAD_FAILED)

    def _build_diagnostics(self, name: str, start: float | None, stop: float | None) -> Path:
        """Blocking: read the config file and write the archive."""
        config_path = getattr(self.core, "config_path", None)
        config_text = Path(config_path).read_text(errors="replace") if config_path else None
        return diagnostics.build_archive(self.core.data_dir, start=start, stop=stop, config_text=config_text,
                                         name=name)

    async def _diagnostics_status_changed(self, status: str) -> None:
        self._diagnostics_status = diagnostics.IDLE if status != diagnostics.UPLOADING else status
        await self._notify(call.DiagnosticsStatusNotification(status=status))

    async def _trigger_DiagnosticsStatusNotification(self, connector_id: int | None) -> None:  # noqa: N802
        await self._notify(call.DiagnosticsStatusNotification(status=self._diagnostics_status))

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

    async def _notify(self, request) -> None:
        """Send a status notification; one lost with the connection is not an error."""
        try:
            await self.call(request)
        except (CallTimeout, CallAborted, ConnectionLost, CallErrorReceived, InvalidResponse) as exc:
            log.warning("%s not delivered: %s", type(request).__name__, exc)
