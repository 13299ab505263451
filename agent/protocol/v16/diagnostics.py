"""OCPP 1.6 diagnostics: GetDiagnostics (Firmware Management) and GetLog (security extension).

Both run on the core's log upload job (``agent.core.management.log_upload``); GetLog and
LogStatusNotification are served by the handlers shared with 2.0.1
(``agent.protocol.common.log_upload.GetLogHandlers``). A GetDiagnostics request has no request id:
its statuses go out as DiagnosticsStatusNotification in 1.6's words.
"""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from agent.runtime.clock import unix_time
from agent.core.management import log_upload as diagnostics
from agent.protocol.common.log_upload import GetLogHandlers

# The job's statuses as DiagnosticsStatus. A cancelled GetDiagnostics says nothing: the newer
# request's statuses follow, and without a request id the CSMS could not tell the two apart.
_DIAGNOSTICS_STATUS = {
    diagnostics.UPLOADING: "Uploading",
    diagnostics.UPLOADED: "Uploaded",
    diagnostics.UPLOAD_FAILURE: diagnostics.UPLOAD_FAILED,
    diagnostics.BAD_MESSAGE: diagnostics.UPLOAD_FAILED,  # 1.6 DiagnosticsStatus has no BadMessage
}


class DiagnosticsHandlers16(GetLogHandlers):
    """Mixed into the 1.6 adapter."""

    canceled_log_status = diagnostics.UPLOAD_FAILURE  # 1.6's UploadLogStatus has no AcceptedCanceled

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, retries: int | None = None, retry_interval: int | None = None,
                           start_time: str | None = None, stop_time: str | None = None, **_):
        """GetDiagnostics: answer with the file name at once; the archive is built and uploaded after."""
        job = self._log_job()
        if job is None:
            return call_result.GetDiagnostics()  # no file name: nothing will be uploaded
        request = diagnostics.LogRequest(location=location, oldest=unix_time(start_time),
                                         latest=unix_time(stop_time), retries=retries,
                                         retry_interval_s=retry_interval)
        return call_result.GetDiagnostics(file_name=self._start_log_upload(job, request).file_name)

    def _log_status(self, request: diagnostics.LogRequest, status: str) -> None:
        """GetLog's statuses as LogStatusNotification, GetDiagnostics's as DiagnosticsStatusNotification."""
        if request.request_id is not None:
            super()._log_status(request, status)
            return
        word = _DIAGNOSTICS_STATUS.get(status)
        if word is not None:
            self.spawn(self._notify(call.DiagnosticsStatusNotification(status=word)), name="diagnostics-status")

    async def _trigger_DiagnosticsStatusNotification(self, connector_id: int | None) -> None:  # noqa: N802
        """Triggered: Uploading while the job uploads (one upload at a time, whatever asked for it), else Idle."""
        job = self.core.logs if self.core is not None else None
        await self._notify(call.DiagnosticsStatusNotification(status=job.status if job else diagnostics.IDLE))
