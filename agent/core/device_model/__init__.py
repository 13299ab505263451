"""The OCPP 2.0.1 device model over the station's one settings store (no ``ocpp`` import).

``DeviceModel`` answers GetVariables, SetVariables, GetBaseReport and GetReport
in neutral form; the 2.0.1 adapter only converts messages. Settings with an
``ocpp201`` name are read-write variables shared with the 1.6 configuration
keys; everything else is a read-only fact of the station (see ``catalog``).

Wiring, for the composition root::

    computed = {
        **station_suppliers(station),
        "ClockCtrlr.DateTime": clock.now,
        "SecurityCtrlr.Identity": lambda: config.station.id,
        "OCPPCommCtrlr.MessageTimeout[Default]": lambda: config.csms.response_timeout_s,
        "AuthCtrlr.Enabled": lambda: not config.station.free_vend,
        "ChargingStation.SupplyPhases": lambda: max(e.phases for e in config.evse),
        variable_key("EVSE", "SupplyPhases", evse_id=1): lambda: 3,
        ...
    }
    model = DeviceModel(settings, evse_ids=[1], computed=computed,
                        evse_max_power_W={1: max_power_W(32, 3)})
"""

from agent.core.device_model.catalog import (
    BYTES_PER_MESSAGE,
    ITEMS_PER_MESSAGE,
    STATION_VARIABLES,
    StationVariable,
)
from agent.core.device_model.datatypes import (
    AttributeType,
    Characteristics,
    ComponentCriterion,
    ComponentId,
    DataType,
    GetResult,
    GetVariableStatus,
    Mutability,
    ReportBase,
    ReportItem,
    SetResult,
    SetVariableStatus,
    variable_key,
)
from agent.core.device_model.model import DeviceModel
from agent.core.device_model.report import chunk
from agent.core.device_model.station import max_power_W, station_suppliers

__all__ = [
    "AttributeType", "BYTES_PER_MESSAGE", "Characteristics", "ComponentCriterion", "ComponentId", "DataType",
    "DeviceModel", "GetResult", "GetVariableStatus", "ITEMS_PER_MESSAGE", "Mutability", "ReportBase", "ReportItem",
    "STATION_VARIABLES", "SetResult", "SetVariableStatus", "StationVariable", "chunk", "max_power_W",
    "station_suppliers", "variable_key",
]
