"""The OCPP 2.0.1 device model of the station, over the one settings store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agent.core.device_model import report as _report
from agent.core.device_model.catalog import Entry, build_entries
from agent.core.device_model.datatypes import (
    AttributeType,
    GetResult,
    GetVariableStatus,
    Mutability,
    ReportBase,
    ReportItem,
    SetResult,
    SetVariableStatus,
)
from agent.core.device_model.values import check_value, render_value
from agent.runtime.settings import render_setting

log = logging.getLogger("agent.device_model")

_Lookup = tuple[str, int | None, int | None]  # lower-case component name, evse id, connector id


class DeviceModel:
    """Components and variables of the station: GetVariables, SetVariables and reports in neutral form.

    Variables backed by a setting read and write ``settings`` (so the 1.6
    configuration keys see the same values); the others are read-only and come
    from ``computed``: zero-argument callables by key (see ``variable_key``:
    "ClockCtrlr.DateTime", "EVSE[1].Power", "Connector[1,1].ConnectorType",
    "DeviceDataCtrlr.ItemsPerMessage[GetReport]"). A variable only the caller
    can answer is left out when its key is not supplied; a supplier that
    returns None (or fails) leaves the value unknown. ``evse_max_power_W``
    gives EVSE.Power its maxLimit. Names compare case-insensitively, as 2.0.1
    says of component and variable names; only the Actual attribute exists.
    """

    def __init__(self, settings, *, evse_ids: Iterable[int], computed: Mapping[str, Callable[[], Any]] | None = None,
                 evse_max_power_W: Mapping[int, float] | None = None):
        self._settings = settings
        self.entries: tuple[Entry, ...] = tuple(build_entries(settings, evse_ids, computed or {},
                                                              evse_max_power_W or {}))
        self._components: set[_Lookup] = {self._where(e) for e in self.entries}
        self._index: dict[tuple, Entry] = {
            (*self._where(e), e.name.lower(), (e.instance or "").lower() or None): e for e in self.entries
        }

    @staticmethod
    def _where(entry: Entry) -> _Lookup:
        c = entry.component
        return (c.name.lower(), c.evse_id, c.connector_id)

    def __repr__(self) -> str:
        return f"<DeviceModel {len(self._components)} components, {len(self.entries)} variables>"

    # ------------------------------------------------------------ lookup

    def _find(self, component: str, variable: str, evse_id: int | None, connector_id: int | None,
              component_instance: str | None, variable_instance: str | None) -> Entry | str:
        """The entry, or "component"/"variable" for what is unknown."""
        where = (str(component).lower(), evse_id, connector_id)
        if component_instance is not None or where not in self._components:
            return "component"  # no component of this station has instances
        instance = str(variable_instance).lower() if variable_instance is not None else None
        entry = self._index.get((*where, str(variable).lower(), instance))
        return entry if entry is not None else "variable"

    def _read(self, entry: Entry) -> str | None:
        """The value as an OCPP string (write-only ones too: callers decide what to reveal)."""
        try:
            if entry.setting is not None:
                return render_setting(entry.setting, self._settings[entry.setting.name])
            return render_value(entry.characteristics.data_type, entry.supply())
        except Exception:
            # One broken supplier (a meter read, a station query) must not fail a whole report.
            log.exception("reading %s failed", entry.key)
            return None

    # ------------------------------------------------------------ get / set

    def get(self, component: str, variable: str, *, evse_id: int | None = None, connector_id: int | None = None,
            component_instance: str | None = None, variable_instance: str | None = None,
            attribute_type: str = "Actual") -> GetResult:
        """One GetVariableData: the value as an OCPP string, or why not.

        A write-only variable answers Rejected (B06.FR.09); a value the station
        cannot tell right now (e.g. the meter is failing) answers Rejected too,
        since an Accepted result must carry a value.
        """
        found = self._find(component, variable, evse_id, connector_id, component_instance, variable_instance)
        if isinstance(found, str):
            return GetResult(_GET_UNKNOWN[found])
        if not _is_actual(attribute_type):
            return GetResult(GetVariableStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE)
        if found.mutability is Mutability.WRITE_ONLY:
            return GetResult(GetVariableStatus.REJECTED, reason="write-only")
        value = self._read(found)
        if value is None:
            return GetResult(GetVariableStatus.REJECTED, reason="value not available")
        return GetResult(GetVariableStatus.ACCEPTED, value)

    def set(self, component: str, variable: str, value: str, *, evse_id: int | None = None,
            connector_id: int | None = None, component_instance: str | None = None,
            variable_instance: str | None = None, attribute_type: str = "Actual") -> SetResult:
        """One SetVariableData: validate, persist through the settings, and report the 2.0.1 status.

        Read-only variable or a value that does not fit (type, bounds, length,
        values list): Rejected, and nothing is stored. Otherwise RebootRequired
        for a setting that applies only after a reboot, else Accepted. A
        state-store failure is raised (StoreError), not blamed on the CSMS.
        """
        found = self._find(component, variable, evse_id, connector_id, component_instance, variable_instance)
        if isinstance(found, str):
            return SetResult(_SET_UNKNOWN[found])
        if not _is_actual(attribute_type):
            return SetResult(SetVariableStatus.NOT_SUPPORTED_ATTRIBUTE_TYPE)
        if found.mutability is Mutability.READ_ONLY:
            log.info("SetVariables %s: rejected, read-only", found.key)
            return SetResult(SetVariableStatus.REJECTED, reason="read-only")
        problem = self._store(found, value)
        if problem is not None:
            # The reason may quote the value, so a secret's is left out.
            shown = "invalid value" if found.setting.secret else f"{value!r}: {problem}"
            log.info("SetVariables %s: rejected, %s", found.key, shown)
            return SetResult(SetVariableStatus.REJECTED, reason=None if found.setting.secret else problem)
        if found.setting.reboot_required:
            return SetResult(SetVariableStatus.REBOOT_REQUIRED)
        return SetResult(SetVariableStatus.ACCEPTED)

    def _store(self, entry: Entry, value: str) -> str | None:
        """Persist a value through the settings; the problem with it, or None once stored."""
        if not isinstance(value, str):
            return "expected a string"
        problem = check_value(entry.characteristics, value)
        if problem is not None:
            return problem
        try:
            self._settings.set(entry.setting.name, value)
        except ValueError as exc:
            return str(exc)
        return None

    # ------------------------------------------------------------ reports

    def report(self, base: str | None = None, *, component_criteria: list[str] | None = None,
               component_variables: list[dict] | None = None) -> list[ReportItem]:
        """The items of a GetBaseReport (``base``) or of a GetReport (criteria and/or component variables).

        ConfigurationInventory: the writable variables; FullInventory: all;
        SummaryInventory: AvailabilityState of the station, EVSEs and connectors
        plus any Problem/Tripped/Overload/Fallback that is true, without
        characteristics. Write-only values never appear; a variable whose value
        is unknown right now is left out. An empty list means EmptyResultSet.
        ValueError for an unknown base or criterion, or a base combined with
        GetReport filters.
        """
        if base is None:
            chosen = _report.select_custom(self.entries, self._read, criteria=component_criteria,
                                           component_variables=component_variables)
            return self._items(chosen, characteristics=True)
        if component_criteria or component_variables is not None:
            raise ValueError("a base report takes no criteria or component variables")
        kind = ReportBase(base)
        chosen = _report.select_base(self.entries, kind, self._read)
        return self._items(chosen, characteristics=kind is not ReportBase.SUMMARY_INVENTORY)

    def _items(self, chosen: list[Entry], *, characteristics: bool) -> list[ReportItem]:
        items = []
        for entry in chosen:
            if entry.mutability is Mutability.WRITE_ONLY:
                items.append(_report.report_item(entry, None, characteristics=characteristics))
                continue
            value = self._read(entry)
            if value is not None:  # 2.0.1 lets a report omit the value of a write-only variable only
                items.append(_report.report_item(entry, value, characteristics=characteristics))
        return items

    @staticmethod
    def chunk(items, *, items_per_message: int, bytes_per_message: int, size_of: Callable[[list], int]) -> list[list]:
        """Split report items into NotifyReport messages within both limits (see ``report.chunk``)."""
        return _report.chunk(items, items_per_message=items_per_message, bytes_per_message=bytes_per_message,
                             size_of=size_of)


_GET_UNKNOWN = {"component": GetVariableStatus.UNKNOWN_COMPONENT, "variable": GetVariableStatus.UNKNOWN_VARIABLE}
_SET_UNKNOWN = {"component": SetVariableStatus.UNKNOWN_COMPONENT, "variable": SetVariableStatus.UNKNOWN_VARIABLE}


def _is_actual(attribute_type: str | None) -> bool:
    # Absent means Actual (2.0.1 AttributeEnumType default); an unknown name is not supported either.
    if attribute_type is None:
        return True
    return str(getattr(attribute_type, "value", attribute_type)) == AttributeType.ACTUAL.value
