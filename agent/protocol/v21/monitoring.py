"""OCPP 2.1 block N over the 2.0.1 monitoring handlers: the fields 2.1 adds.

* NotifyMonitoringReport: 2.1 requires each monitor's ``eventNotificationType`` (who made it).
* NotifyEvent: each monitor event also says the monitor's ``severity`` (2.1 EventDataType).
* SetVariableMonitoring: a Periodic or PeriodicClockAligned monitor the CSMS marks for a periodic
  event stream gets its stream (``agent.core.device_model.event_streams``; opened by
  ``event_streams.EventStreamHandlers21`` after the answer); any other type asking for one is
  Rejected with the reason. A monitor replaced without a stream loses its stream. (TargetDelta and
  TargetDeltaRelative are UnsupportedMonitorType, from the core, as any monitor type it does not know.)
"""

from __future__ import annotations

from ocpp.routing import on
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.protocol.v201.codec import notify_event
from agent.protocol.v201.monitoring import MonitoringHandlers201, monitor_event_data

STREAMS_PERIODIC_ONLY = "a periodic event stream needs a Periodic or PeriodicClockAligned monitor"
_PERIODIC = ("Periodic", "PeriodicClockAligned")


class MonitoringHandlers21(MonitoringHandlers201):
    """Mixed into the 2.1 adapter before the 2.0.1 handlers it refines."""

    def monitor_report_entry(self, monitor) -> dict:
        """The 2.0.1 entry and who made the monitor (PreconfiguredMonitor or CustomMonitor)."""
        return {**super().monitor_report_entry(monitor), "event_notification_type": monitor.kind.value}

    def _monitor_events(self, events) -> None:
        """The core's sink: one NotifyEvent for the events of one evaluation, each with its monitor's severity."""
        data = [{**monitor_event_data(self._next_event_id(), event), "severity": event.monitor.severity}
                for event in events]
        self.spawn(self._send_quietly(notify_event(data, generated_at=self.clock.time())), name="notify-event")

    @on(Action.set_variable_monitoring)
    def on_set_variable_monitoring(self, set_monitoring_data: list[dict], **_):
        """SetVariableMonitoring: the 2.0.1 results; a periodic monitor asking for a stream gets it, another
        type asking for one is Rejected."""
        refused = [item.get("periodic_event_stream") is not None and item["type"] not in _PERIODIC
                   for item in set_monitoring_data]
        others = [item for item, no in zip(set_monitoring_data, refused) if not no]
        results = iter(super().on_set_variable_monitoring(set_monitoring_data=others).set_monitoring_result
                       if others else [])
        merged = [_stream_refused(item) if no else next(results) for item, no in zip(set_monitoring_data, refused)]
        streams = self.core.monitoring.streams if self._monitoring() is not None else None
        for item, result in zip(set_monitoring_data, merged):
            if streams is None or result["status"] != "Accepted":
                continue
            params = item.get("periodic_event_stream")
            if params is not None:  # opened after the answer (EventStreamHandlers21)
                streams.request(result["id"], interval=params.get("interval", 0), values=params.get("values", 0))
            else:
                streams.remove(result["id"])  # replaced by a monitor without a stream
        return call_result.SetVariableMonitoring(set_monitoring_result=merged)


def _stream_refused(item: dict) -> dict:
    """The SetMonitoringResultType of an item that asks for a periodic event stream on a monitor not periodic."""
    return {"status": "Rejected", "type": item["type"], "severity": item["severity"],
            "component": item["component"], "variable": item["variable"],
            "status_info": {"reason_code": "UnsupportedParam", "additional_info": STREAMS_PERIODIC_ONLY}}
