"""OCPP 2.0.1 provisioning messages over the core's device model: GetVariables, SetVariables,
GetBaseReport and GetReport with their NotifyReport messages (split by ItemsPerMessage/BytesPerMessage)."""

from __future__ import annotations

import json
import logging

from ocpp.exceptions import OccurrenceConstraintViolationError
from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from agent.protocol.common.case_keys import to_camel

log = logging.getLogger("agent.ocpp201")


def _where(component: dict) -> dict:
    evse = component.get("evse") or {}
    return {"evse_id": evse.get("id"), "connector_id": evse.get("connector_id"),
            "component_instance": component.get("instance")}


class DeviceModelHandlers:
    """Mixed into the 2.0.1 adapter: B05-B08 (variables and reports)."""

    def _limit(self, variable: str, instance: str) -> int:
        result = self.core.device_model.get("DeviceDataCtrlr", variable, variable_instance=instance)
        return int(result.value) if result.value is not None else 100

    def _check_items(self, count: int, instance: str) -> None:
        limit = self._limit("ItemsPerMessage", instance)
        if count > limit:
            raise OccurrenceConstraintViolationError(description=f"{count} items; ItemsPerMessage{instance} is {limit}")

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict], **_):
        """GetVariables: one result per requested variable."""
        self._check_items(len(get_variable_data), "GetVariables")
        results = []
        for item in get_variable_data:
            component, variable = item["component"], item["variable"]
            attribute = item.get("attribute_type", "Actual")
            found = self.core.device_model.get(component["name"], variable["name"], **_where(component),
                                               variable_instance=variable.get("instance"), attribute_type=attribute)
            entry = {"attribute_status": str(found.status.value), "attribute_type": attribute,
                     "component": component, "variable": variable}
            if found.value is not None:
                entry["attribute_value"] = found.value
            results.append(entry)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict], **_):
        """SetVariables: each value validated and stored through the one settings store."""
        self._check_items(len(set_variable_data), "SetVariables")
        results = []
        for item in set_variable_data:
            component, variable = item["component"], item["variable"]
            attribute = item.get("attribute_type", "Actual")
            outcome = self.core.device_model.set(component["name"], variable["name"], item["attribute_value"],
                                                 **_where(component), variable_instance=variable.get("instance"),
                                                 attribute_type=attribute)
            results.append({"attribute_status": str(outcome.status.value), "attribute_type": attribute,
                            "component": component, "variable": variable})
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, **_):
        """GetBaseReport: Accepted, then the report follows in NotifyReport messages."""
        items = self._hold_report(request_id, self.core.device_model.report(report_base))
        return call_result.GetBaseReport(status="Accepted" if items else "EmptyResultSet")

    @after(Action.get_base_report)
    async def after_get_base_report(self, request_id: int, **_):
        """Send the base report."""
        await self._send_report(request_id)

    @on(Action.get_report)
    def on_get_report(self, request_id: int, component_variable: list[dict] | None = None,
                      component_criteria: list[str] | None = None, **_):
        """GetReport by component criteria and/or component variables."""
        items = self._hold_report(request_id, self.core.device_model.report(
            component_criteria=component_criteria, component_variables=component_variable))
        return call_result.GetReport(status="Accepted" if items else "EmptyResultSet")

    @after(Action.get_report)
    async def after_get_report(self, request_id: int, **_):
        """Send the requested report."""
        await self._send_report(request_id)

    def _hold_report(self, request_id: int, items: list) -> list:
        """Keep a report, taken when the request was answered, until its @after hook sends it."""
        if not hasattr(self, "_reports"):
            self._reports: dict[int, list] = {}
        self._reports[request_id] = items
        return items

    async def _send_report(self, request_id: int) -> None:
        items = [item.as_report_data() for item in self._reports.pop(request_id, [])]
        await self._send_in_parts(items, lambda part, **numbering: call.NotifyReport(
            request_id=request_id, report_data=part, **numbering))

    async def _send_in_parts(self, items: list, message) -> None:
        """Send ``items`` in parts within GetReport's ItemsPerMessage / BytesPerMessage, each as
        ``message(part, seq_no=, tbc=, generated_at=)`` (NotifyReport, NotifyMonitoringReport)."""
        if not items:
            return
        chunks = self.core.device_model.chunk(
            items, items_per_message=self._limit("ItemsPerMessage", "GetReport"),
            bytes_per_message=self._limit("BytesPerMessage", "GetReport"),
            size_of=lambda part: len(json.dumps(to_camel(part))) + 200)
        generated_at = self.clock.now_iso()
        for seq_no, part in enumerate(chunks):
            await self.call(message(part, seq_no=seq_no, tbc=seq_no < len(chunks) - 1, generated_at=generated_at))
