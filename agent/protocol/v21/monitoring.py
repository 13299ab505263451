"""OCPP 2.1 block N over the 2.0.1 monitoring handlers: the fields 2.1 adds.

* NotifyMonitoringReport: 2.1 requires each monitor's ``eventNotificationType`` (who made it).
* SetVariableMonitoring: a monitor the CSMS marks for a periodic event stream is Rejected with
  the reason: streams are not offered yet, and a monitor without its stream would not be what
  the CSMS asked for. (TargetDelta and TargetDeltaRelative are UnsupportedMonitorType, from the
  core, as any monitor type it does not know.)
"""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.protocol.v201.monitoring import MonitoringHandlers201

STREAMS_NOT_YET = "periodic event streams: not yet supported by this station"


class MonitoringHandlers21(MonitoringHandlers201):
    """Mixed into the 2.1 adapter before the 2.0.1 handlers it refines."""

    def monitor_report_entry(self, monitor) -> dict:
        """The 2.0.1 entry and who made the monitor (PreconfiguredMonitor or CustomMonitor)."""
        return {**super().monitor_report_entry(monitor), "event_notification_type": monitor.kind.value}

    @on(Action.set_variable_monitoring)
    def on_set_variable_monitoring(self, set_monitoring_data: list[dict], **_):
        """SetVariableMonitoring: the 2.0.1 results, but Rejected for an item that asks for a stream."""
        others = [item for item in set_monitoring_data if not item.get("periodic_event_stream")]
        results = iter(super().on_set_variable_monitoring(set_monitoring_data=others).set_monitoring_result
                       if others else [])
        merged = [_stream_refused(item) if item.get("periodic_event_stream") else next(results)
                  for item in set_monitoring_data]
        return call_result.SetVariableMonitoring(set_monitoring_result=merged)


def _stream_refused(item: dict) -> dict:
    """The SetMonitoringResultType of an item that asks for a periodic event stream."""
    return {"status": "Rejected", "type": item["type"], "severity": item["severity"],
            "component": item["component"], "variable": item["variable"],
            "status_info": {"reason_code": "UnsupportedParam", "additional_info": STREAMS_NOT_YET}}
