"""OCPP 2.1 block N, diagnostics: GetLog as in 2.0.1, and the DataCollectorLog 2.1 adds Rejected with the
reason (this station has no data collector; DiagnosticsLog and SecurityLog are uploaded as in 2.0.1)."""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.protocol.v201.diagnostics import DiagnosticsHandlers201

_LOG_TYPES = ("DiagnosticsLog", "SecurityLog")


class DiagnosticsHandlers21(DiagnosticsHandlers201):
    """Mixed into the 2.1 adapter before the 2.0.1 handlers it refines."""

    @on(Action.get_log)
    def on_get_log(self, log: dict, log_type: str, request_id: int, **options):
        """GetLog: a DiagnosticsLog or SecurityLog upload as in 2.0.1; any other type Rejected."""
        if log_type not in _LOG_TYPES:
            return call_result.GetLog(status="Rejected", status_info={
                "reason_code": "UnsupportedParam", "additional_info": f"{log_type}: this station has no such log"})
        return super().on_get_log(log=log, log_type=log_type, request_id=request_id, **options)
