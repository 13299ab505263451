"""OCPP 1.6 Firmware Management profile, diagnostics half: GetDiagnostics over ``agent.core.diagnostics``.

Wiring as for ``v16_firmware``: the core carries ``data_dir`` and ``config_path``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from agent.core import diagnostics
from agent.protocol.v16_firmware import _timestamp

log = logging.getLogger("agent.ocpp16")


class DiagnosticsHandlers16:
    """Mixed into the 1.6 adapter."""

    _diagnostics_status = diagnostics.IDLE
    _diagnostics_file: str | None = None

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
