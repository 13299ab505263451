"""OCPP 2.0.1 block N, monitoring and customer information, over ``agent.core.device_model.monitoring`` and
``agent.core.device_model.customer_info``.

SetVariableMonitoring, ClearVariableMonitoring, SetMonitoringBase, SetMonitoringLevel and
GetMonitoringReport (answered, then NotifyMonitoringReport split like NotifyReport); the
monitors' events go out as NotifyEvent. CustomerInformation is answered, then
NotifyCustomerInformation carries what the station holds (and has cleared).
"""

from __future__ import annotations

import json
import logging

from ocpp.exceptions import FormatViolationError, OccurrenceConstraintViolationError
from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from agent.runtime.clock import format_iso
from agent.core.device_model.customer_info import Customer, pack
from agent.core.device_model.monitoring import ClearMonitorStatus, MonitorEvent, MonitorRequest, SetMonitorStatus
from agent.protocol.common.case_keys import to_camel
from agent.protocol.v201.codec import notify_event

log = logging.getLogger("agent.ocpp201")

_REASON_CODE = {SetMonitorStatus.REJECTED: "InvalidValue", SetMonitorStatus.DUPLICATE: "Duplicate",
                SetMonitorStatus.UNSUPPORTED_MONITOR_TYPE: "UnsupportedParam"}


def monitor_event_data(event_id: int, event: MonitorEvent) -> dict:
    """One EventDataType for a monitor that fired (N07.FR.06: its component, variable and id)."""
    monitor = event.monitor
    data = {"event_id": event_id, "timestamp": format_iso(event.timestamp), "trigger": event.trigger,
            "actual_value": event.actual_value[:2500], "event_notification_type": monitor.kind.value,
            "component": monitor.component.as_dict(), "variable": monitor.variable_dict(),
            "variable_monitoring_id": monitor.id}
    if event.cleared:
        data["cleared"] = True
    if event.transaction_id is not None:
        data["transaction_id"] = event.transaction_id
    return data


def _monitor_request(item: dict) -> MonitorRequest:
    component, variable = item["component"], item["variable"]
    evse = component.get("evse") or {}
    return MonitorRequest(component=component["name"], variable=variable["name"], type=item["type"],
                          value=item["value"], severity=item["severity"], evse_id=evse.get("id"),
                          connector_id=evse.get("connector_id"), component_instance=component.get("instance"),
                          variable_instance=variable.get("instance"), transaction=item.get("transaction", False),
                          id=item.get("id"))


def _customer(id_token: dict | None, customer_identifier: str | None, customer_certificate: dict | None) -> Customer:
    return Customer(id_token=(id_token or {}).get("id_token"), token_type=(id_token or {}).get("type"),
                    identifier=customer_identifier, certificate=customer_certificate)


class MonitoringHandlers201:
    """Mixed into the 2.0.1 adapter: ``self.core.monitoring`` and ``self.core.customer_info`` (None or
    absent: every request is refused)."""

    def _monitoring(self):
        return self.core.monitoring if self.core is not None else None

    def _customer_info(self):
        return self.core.customer_info if self.core is not None else None

    # ------------------------------------------------------------ connection

    async def on_accepted(self) -> None:
        """Registered: monitor events go through this connection, starting with those queued offline."""
        await super().on_accepted()
        monitoring = self._monitoring()
        if monitoring is not None:
            monitoring.attach(self._monitor_events)

    def on_disconnected(self) -> None:
        """Offline: monitoring queues its severe events until the next registration."""
        monitoring = self._monitoring()
        if monitoring is not None:
            monitoring.detach(self._monitor_events)
        super().on_disconnected()

    def _monitor_events(self, events: list[MonitorEvent]) -> None:
        """The core's sink: one NotifyEvent for the events of one evaluation."""
        data = [monitor_event_data(self._next_event_id(), event) for event in events]
        self.spawn(self._send_quietly(notify_event(data, generated_at=self.clock.time())), name="notify-event")

    def _check_monitoring_size(self, message: str, items: list) -> None:
        """MonitoringCtrlr.ItemsPerMessage/BytesPerMessage[message] (N04.FR.09, N06.FR.06/07).

        The frame's size is estimated by serialising the items again: a handler
        does not see the raw frame.
        """
        model = self.core.device_model
        count = model.get("MonitoringCtrlr", "ItemsPerMessage", variable_instance=message).value
        if count is not None and len(items) > int(count):
            raise OccurrenceConstraintViolationError(
                description=f"{len(items)} items; MonitoringCtrlr.ItemsPerMessage[{message}] is {count}")
        size = len(json.dumps(to_camel(items)))
        limit = model.get("MonitoringCtrlr", "BytesPerMessage", variable_instance=message).value
        if limit is not None and size > int(limit):
            raise FormatViolationError(description=f"about {size} bytes; "
                                                   f"MonitoringCtrlr.BytesPerMessage[{message}] is {limit}")

    # ------------------------------------------------------------ N02-N06

    @on(Action.set_variable_monitoring)
    def on_set_variable_monitoring(self, set_monitoring_data: list[dict], **_):
        """SetVariableMonitoring: one result per item, echoing its component and variable (N04.FR.01/02)."""
        monitoring = self._monitoring()
        if monitoring is not None:
            self._check_monitoring_size("SetVariableMonitoring", set_monitoring_data)
        results = []
        for item in set_monitoring_data:
            if monitoring is None:
                status, monitor_id, reason = SetMonitorStatus.REJECTED, None, "no monitoring on this station"
            else:
                outcome = monitoring.set_monitor(_monitor_request(item))
                status, monitor_id, reason = outcome.status, outcome.monitor_id, outcome.reason
            result = {"status": status.value, "type": item["type"], "severity": item["severity"],
                      "component": item["component"], "variable": item["variable"]}
            if monitor_id is not None:
                result["id"] = monitor_id
            if reason:
                result["status_info"] = {"reason_code": _REASON_CODE.get(status, "InvalidValue"),
                                         "additional_info": reason[:512]}
            results.append(result)
        return call_result.SetVariableMonitoring(set_monitoring_result=results)

    @on(Action.clear_variable_monitoring)
    def on_clear_variable_monitoring(self, id: list[int], **_):
        """ClearVariableMonitoring: Accepted, NotFound or Rejected per id (N06)."""
        monitoring = self._monitoring()
        if monitoring is not None:
            self._check_monitoring_size("ClearVariableMonitoring", id)
        results = [{"id": monitor_id, "status": (monitoring.clear_monitor(monitor_id) if monitoring is not None
                                                 else ClearMonitorStatus.NOT_FOUND).value} for monitor_id in id]
        return call_result.ClearVariableMonitoring(clear_monitoring_result=results)

    @on(Action.set_monitoring_base)
    def on_set_monitoring_base(self, monitoring_base: str, **_):
        """SetMonitoringBase: All, FactoryDefault and HardWiredOnly are all supported (N03)."""
        monitoring = self._monitoring()
        if monitoring is None:
            return call_result.SetMonitoringBase(status="NotSupported")
        monitoring.set_base(monitoring_base)
        return call_result.SetMonitoringBase(status="Accepted")

    @on(Action.set_monitoring_level)
    def on_set_monitoring_level(self, severity: int, **_):
        """SetMonitoringLevel: Rejected outside 0-9 (N05.FR.02)."""
        monitoring = self._monitoring()
        accepted = monitoring is not None and monitoring.set_level(severity)
        return call_result.SetMonitoringLevel(status="Accepted" if accepted else "Rejected")

    @on(Action.get_monitoring_report)
    def on_get_monitoring_report(self, request_id: int, monitoring_criteria: list[str] | None = None,
                                 component_variable: list[dict] | None = None, **_):
        """GetMonitoringReport: Accepted and NotifyMonitoringReport follows, or EmptyResultSet (N02)."""
        monitoring = self._monitoring()
        if monitoring is None:
            return call_result.GetMonitoringReport(status="NotSupported")
        if component_variable:
            self._check_items(len(component_variable), "GetReport")  # N02.FR.07
        groups = monitoring.report(criteria=monitoring_criteria, component_variables=component_variable)
        if not hasattr(self, "_monitoring_reports"):
            self._monitoring_reports: dict[int, list] = {}
        self._monitoring_reports[request_id] = groups
        return call_result.GetMonitoringReport(status="Accepted" if groups else "EmptyResultSet")

    def monitor_report_entry(self, monitor) -> dict:
        """One VariableMonitoringType of NotifyMonitoringReport (a hook: 2.1 adds a required field)."""
        return {"id": monitor.id, "transaction": monitor.transaction, "value": monitor.value,
                "type": monitor.type.value, "severity": monitor.severity}

    @after(Action.get_monitoring_report)
    async def after_get_monitoring_report(self, request_id: int, **_):
        """Send the report taken when the request was answered, split by ItemsPerMessage/BytesPerMessage."""
        groups = getattr(self, "_monitoring_reports", {}).pop(request_id, [])
        items = [{"component": entry.component.as_dict(), "variable": entry.variable_dict(),
                  "variable_monitoring": [self.monitor_report_entry(m) for m in monitors]}
                 for entry, monitors in groups]
        # The device model's parts and numbering (DeviceModelHandlers is a base of the same adapter).
        await self._send_in_parts(items, lambda part, **numbering: call.NotifyMonitoringReport(
            request_id=request_id, monitor=part, **numbering))

    # ------------------------------------------------------------ N09/N10

    @on(Action.customer_information)
    def on_customer_information(self, request_id: int, report: bool, clear: bool, id_token: dict | None = None,
                                customer_identifier: str | None = None, customer_certificate: dict | None = None,
                                **_):
        """CustomerInformation: Rejected without a customer or with neither report nor clear (N09.FR.07)."""
        customer = _customer(id_token, customer_identifier, customer_certificate)
        accepted = self._customer_info() is not None and customer.named and (report or clear)
        return call_result.CustomerInformation(status="Accepted" if accepted else "Rejected")

    @after(Action.customer_information)
    async def after_customer_information(self, request_id: int, report: bool, clear: bool,
                                         id_token: dict | None = None, customer_identifier: str | None = None,
                                         customer_certificate: dict | None = None, **_):
        """Gather (and clear), then NotifyCustomerInformation in parts of 512 characters."""
        info = self._customer_info()
        customer = _customer(id_token, customer_identifier, customer_certificate)
        if info is None or not customer.named or not (report or clear):
            return
        parts = pack(info.handle(customer, report=report, clear=clear))
        generated_at = self.clock.now_iso()
        for seq_no, part in enumerate(parts):
            await self.call(call.NotifyCustomerInformation(data=part, seq_no=seq_no, generated_at=generated_at,
                                                           request_id=request_id, tbc=seq_no < len(parts) - 1))
