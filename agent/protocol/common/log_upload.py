"""GetLog and LogStatusNotification, as OCPP 2.0.1 and the 1.6 security extension both word them.

The 1.6 security extension took GetLog and LogStatusNotification from 2.0.1 field
for field, so :class:`GetLogHandlers` serves both versions through the adapter's
own message classes (``self._call``, ``self._call_result``); each version's
``diagnostics`` module builds on it. The upload job is the core's (``core.logs``),
built on first use (``agent.core.management.log_upload``).
"""

from __future__ import annotations

from ocpp.routing import on

from agent.runtime.clock import unix_time
from agent.core.management import log_upload as diagnostics


class GetLogHandlers:
    """GetLog, LogStatusNotification and its trigger, worded alike in 2.0.1 and the 1.6 security extension."""

    #: LogStatusNotification's status for an upload that a newer GetLog cancelled.
    canceled_log_status = diagnostics.CANCELED

    def _log_job(self) -> diagnostics.LogUploadJob | None:
        """The core's upload job; None when the station has no data directory to build archives in."""
        return diagnostics.log_job(self.core, clock=self.clock.time)

    @on("GetLog")
    def on_get_log(self, log: dict, log_type: str, request_id: int, retries: int | None = None,
                   retry_interval: int | None = None, **_):
        """GetLog: Accepted (AcceptedCanceled when it replaces an upload in progress) with the file name."""
        job = self._log_job()
        if job is None:
            return self._call_result.GetLog(status="Rejected")
        request = diagnostics.LogRequest(
            location=log["remote_location"], log_type=log_type, request_id=request_id,
            oldest=unix_time(log.get("oldest_timestamp")), latest=unix_time(log.get("latest_timestamp")),
            retries=retries, retry_interval_s=retry_interval)
        started = self._start_log_upload(job, request)
        return self._call_result.GetLog(status="AcceptedCanceled" if started.canceled else "Accepted",
                                        filename=started.file_name)

    def _start_log_upload(self, job: diagnostics.LogUploadJob, request: diagnostics.LogRequest):
        """Start ``request``; its statuses come to this connection."""
        job.on_status = self._log_status
        return job.start(request)

    def _log_status(self, request: diagnostics.LogRequest, status: str) -> None:
        """The job's status as LogStatusNotification, sent from a task: the job never waits for the CSMS."""
        if status == diagnostics.CANCELED:
            status = self.canceled_log_status
        notification = self._call.LogStatusNotification(status=status, request_id=request.request_id)
        self.spawn(self._notify(notification), name="log-status")

    async def _trigger_LogStatusNotification(self, target: int | None) -> None:  # noqa: N802 (message name)
        """Triggered: Uploading with the request's id while an upload runs, else Idle without one."""
        job = self.core.logs if self.core is not None else None
        current = job.current if job is not None else None
        status = diagnostics.UPLOADING if current is not None else diagnostics.IDLE
        await self._notify(self._call.LogStatusNotification(
            status=status, request_id=current.request_id if current is not None else None))

    # ------------------------------------------------------------ connection

    async def on_accepted(self) -> None:
        """Registered: an upload still running reports its remaining statuses through this connection."""
        await super().on_accepted()
        job = self.core.logs if self.core is not None else None
        if job is not None:
            job.on_status = self._log_status

    def on_disconnected(self) -> None:
        """Stop sending log statuses through a dead connection."""
        job = self.core.logs if self.core is not None else None
        if job is not None and job.on_status == self._log_status:
            job.on_status = None
        super().on_disconnected()
