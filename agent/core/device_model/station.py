"""Live values of the station for the device model: availability and problems read from the core, and
power and supply voltage from the meters' published readings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from agent.core.device_model.catalog import CONNECTOR_ID, CURRENT_PHASES, VOLTAGE_PHASES
from agent.core.device_model.datatypes import variable_key
from agent.core.charging.model import ConnectorStatus
from hal.faults import fault_spec

NOMINAL_VOLTAGE_V = 230.0  # per phase, line to neutral (IEC 60038)

# 2.0.1 folds the 1.6 session states into Occupied (ConnectorStatusEnumType).
AVAILABILITY = {
    ConnectorStatus.AVAILABLE: "Available",
    ConnectorStatus.PREPARING: "Occupied",
    ConnectorStatus.CHARGING: "Occupied",
    ConnectorStatus.SUSPENDED_EV: "Occupied",
    ConnectorStatus.SUSPENDED_EVSE: "Occupied",
    ConnectorStatus.FINISHING: "Occupied",
    ConnectorStatus.RESERVED: "Reserved",
    ConnectorStatus.UNAVAILABLE: "Unavailable",
    ConnectorStatus.FAULTED: "Faulted",
}


def station_suppliers(station) -> dict[str, Callable[[], Any]]:
    """``computed`` entries for AvailabilityState and Problem of a ChargingStation, its EVSEs and connectors.

    Reads ``station.statuses``, ``station.station_faults`` and each machine's
    ``status`` and ``faults`` at the moment of the request.
    """
    out: dict[str, Callable[[], Any]] = {
        "ChargingStation.AvailabilityState": partial(_station_state, station),
        "ChargingStation.Problem": lambda: bool(station.station_faults),
    }
    for evse_id, machine in station.evses.items():
        state = partial(_evse_state, machine)
        out[variable_key("EVSE", "AvailabilityState", evse_id=evse_id)] = state
        out[variable_key("EVSE", "Problem", evse_id=evse_id)] = partial(_has_faults, machine)
        out[variable_key("Connector", "AvailabilityState", evse_id=evse_id, connector_id=CONNECTOR_ID)] = state
    return out


def meter_suppliers(meters: Mapping[int, Any], *, phases: Mapping[int, int]) -> dict[str, Callable[[], Any]]:
    """``computed`` entries for EVSE.Power, EVSE.Voltage[L1-N..] and EVSE.Current[L1..] (one per phase in ``phases``).

    Values come from each meter's published reading (hal EnergyMeter ``latest``:
    the meter is polled live, so it is at most a poll interval old); a meter
    whose reading went stale (fault meter-offline) gives unknown values, never
    an old reading passed off as the present value.
    """
    out: dict[str, Callable[[], Any]] = {}
    for evse_id, meter in meters.items():
        reading = partial(_fresh_reading, meter)
        out[variable_key("EVSE", "Power", evse_id=evse_id)] = partial(_power, reading)
        for index, phase in enumerate(VOLTAGE_PHASES[:phases.get(evse_id, 1)]):
            key = variable_key("EVSE", "Voltage", evse_id=evse_id, variable_instance=phase)
            out[key] = partial(_voltage, reading, index)
        for index, phase in enumerate(CURRENT_PHASES[:phases.get(evse_id, 1)]):
            key = variable_key("EVSE", "Current", evse_id=evse_id, variable_instance=phase)
            out[key] = partial(_current, reading, index)
    return out


def _fresh_reading(meter):
    return meter.latest  # None when stale: the meter decides, by its own poll interval


def _power(reading: Callable[[], Any]) -> float | None:
    current = reading()
    return None if current is None else current.power_W


def _voltage(reading: Callable[[], Any], index: int) -> float | None:
    current = reading()
    if current is None or index >= len(current.voltage_V):
        return None  # the meter measures fewer phases than the EVSE is said to have
    return current.voltage_V[index]


def _current(reading: Callable[[], Any], index: int) -> float | None:
    present = reading()
    if present is None or index >= len(present.current_A):
        return None  # the meter measures fewer phases than the EVSE is said to have
    return present.current_A[index]


def max_power_W(max_current_A: float, phases: int, *, voltage_V: float = NOMINAL_VOLTAGE_V) -> float:
    """The most an EVSE can deliver, for EVSE.Power's maxLimit (``DeviceModel(evse_max_power_W=)``)."""
    return max_current_A * phases * voltage_V


def _station_state(station) -> str:
    if any(_stops_charging(code) for code in station.station_faults):
        return "Faulted"
    status, _ = station.statuses.get(0, (ConnectorStatus.AVAILABLE, None))
    return "Unavailable" if status is ConnectorStatus.UNAVAILABLE else "Available"


def _evse_state(machine) -> str:
    return AVAILABILITY[machine.status]


def _has_faults(machine) -> bool:
    return bool(machine.faults)


def _stops_charging(code: str) -> bool:
    try:
        return fault_spec(code).stops_charging
    except ValueError:
        return True  # a code this firmware does not know: assume the worst
