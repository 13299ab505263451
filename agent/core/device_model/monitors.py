"""What a variable monitor is (OCPP 2.0.1 block N), version-neutral: the monitor types and outcomes, the
monitor and its request and event, this firmware's preconfigured monitors, what makes a monitor impossible
on a variable, and the persisted state (read before ``Monitoring`` exists).

``agent.core.device_model.monitoring`` holds the service that sets, evaluates and reports them; every name
here is importable from there too. Enumeration values are spelled as OCPP 2.0.1 spells them, as in
``agent.core.device_model``, so the adapter passes them through.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.core.device_model.catalog import VOLTAGE_PHASES, Entry
from agent.core.device_model.datatypes import ComponentId, DataType, variable_key
from agent.core.device_model.station import NOMINAL_VOLTAGE_V

STATE_KEY = "monitoring:state"
DEFAULT_BASE = "FactoryDefault"
DEFAULT_LEVEL = 9  # report every severity until the CSMS narrows it
FIRST_CUSTOM_ID = 1000  # preconfigured monitors have the ids below
OFFLINE_QUEUE_MAX = 200  # events kept for the next connection; the oldest go first
MIN_PERIOD_S = 1.0  # a shorter period would flood the link, not inform anyone
DAY_S = 86400.0
CLOCK_RECHECK_S = 60.0  # a clock-aligned timer wakes at least this often to notice a clock correction
SUPPLY_TOLERANCE = 0.10  # EN 50160: supply voltage within +-10 % of nominal

NUMERIC = (DataType.INTEGER, DataType.DECIMAL)


class MonitorType(str, enum.Enum):
    """How a monitor watches its variable (2.0.1 MonitorEnumType)."""

    UPPER_THRESHOLD = "UpperThreshold"
    LOWER_THRESHOLD = "LowerThreshold"
    DELTA = "Delta"
    PERIODIC = "Periodic"
    PERIODIC_CLOCK_ALIGNED = "PeriodicClockAligned"


THRESHOLDS = (MonitorType.UPPER_THRESHOLD, MonitorType.LOWER_THRESHOLD)
PERIODIC_TYPES = (MonitorType.PERIODIC, MonitorType.PERIODIC_CLOCK_ALIGNED)
CRITERIA = {"ThresholdMonitoring": THRESHOLDS, "DeltaMonitoring": (MonitorType.DELTA,),
            "PeriodicMonitoring": PERIODIC_TYPES}
"""GetMonitoringReport's monitoringCriteria and the monitor types each selects."""


class MonitorKind(str, enum.Enum):
    """Who made a monitor (2.0.1 EventNotificationEnumType); this station has no hard-wired monitors."""

    PRECONFIGURED = "PreconfiguredMonitor"
    CUSTOM = "CustomMonitor"


class MonitoringBase(str, enum.Enum):
    """Which preconfigured monitors are active (2.0.1 MonitoringBaseEnumType)."""

    ALL = "All"
    FACTORY_DEFAULT = "FactoryDefault"
    HARD_WIRED_ONLY = "HardWiredOnly"


class SetMonitorStatus(str, enum.Enum):
    """The outcome of one SetMonitoringData (2.0.1 SetMonitoringStatusEnumType)."""

    ACCEPTED = "Accepted"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    UNSUPPORTED_MONITOR_TYPE = "UnsupportedMonitorType"
    REJECTED = "Rejected"
    DUPLICATE = "Duplicate"


class ClearMonitorStatus(str, enum.Enum):
    """The outcome of clearing one monitor (2.0.1 ClearMonitoringStatusEnumType)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    NOT_FOUND = "NotFound"


@dataclass(frozen=True)
class Monitor:
    """One monitor on one variable; ``severity`` 0 (Danger) to 9 (Debug)."""

    id: int
    component: ComponentId
    variable: str
    instance: str | None
    type: MonitorType
    value: float
    severity: int
    transaction: bool = False  # active only while a transaction runs where the variable is
    kind: MonitorKind = MonitorKind.CUSTOM

    @property
    def key(self) -> str:
        """The monitored variable's key (``variable_key``)."""
        c = self.component
        return variable_key(c.name, self.variable, evse_id=c.evse_id, connector_id=c.connector_id,
                            variable_instance=self.instance)

    def variable_dict(self) -> dict[str, Any]:
        """The 2.0.1 VariableType as a dict."""
        return {"name": self.variable} if self.instance is None else {"name": self.variable, "instance": self.instance}

    def to_dict(self) -> dict[str, Any]:
        """The monitor as JSON for the state store."""
        c = self.component
        return {"id": self.id, "component": [c.name, c.evse_id, c.connector_id], "variable": self.variable,
                "instance": self.instance, "type": self.type.value, "value": self.value,
                "severity": self.severity, "transaction": self.transaction, "kind": self.kind.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Monitor:
        """A monitor stored by ``to_dict``."""
        return cls(data["id"], ComponentId(*data["component"]), data["variable"], data["instance"],
                   MonitorType(data["type"]), float(data["value"]), int(data["severity"]),
                   bool(data["transaction"]), MonitorKind(data["kind"]))


@dataclass(frozen=True)
class Preset:
    """A preconfigured monitor; active under base All, and also under FactoryDefault if ``factory_default``."""

    monitor: Monitor
    factory_default: bool


@dataclass(frozen=True)
class MonitorRequest:
    """One SetMonitoringData in neutral form; ``id`` names a monitor to replace."""

    component: str
    variable: str
    type: str
    value: float
    severity: int
    evse_id: int | None = None
    connector_id: int | None = None
    component_instance: str | None = None
    variable_instance: str | None = None
    transaction: bool = False
    id: int | None = None


@dataclass(frozen=True)
class SetMonitorResult:
    """The answer to one SetMonitoringData; ``monitor_id`` is set when Accepted."""

    status: SetMonitorStatus
    monitor_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class MonitorEvent:
    """A monitor that fired: what to tell the CSMS in one EventDataType (the adapter adds the eventId)."""

    monitor: Monitor
    trigger: str  # 2.0.1 EventTriggerEnumType: Alerting, Delta or Periodic
    actual_value: str
    timestamp: float
    cleared: bool = False
    transaction_id: str | None = None


def preconfigured_monitors(evse_phases: Mapping[int, int], *,
                           nominal_V: float = NOMINAL_VOLTAGE_V) -> list[Preset]:
    """This firmware's monitors, ids from 1: per EVSE, the supply voltage of each phase outside
    +-10 % of nominal (Error, factory default), and every availability change (Informational, base All)."""
    presets: list[Preset] = []

    def add(evse_id: int, variable: str, instance: str | None, kind: MonitorType, value: float,
            severity: int, factory_default: bool) -> None:
        monitor = Monitor(len(presets) + 1, ComponentId("EVSE", evse_id), variable, instance, kind, value,
                          severity, kind=MonitorKind.PRECONFIGURED)
        presets.append(Preset(monitor, factory_default))

    for evse_id, phases in sorted(evse_phases.items()):
        for phase in VOLTAGE_PHASES[:phases]:
            add(evse_id, "Voltage", phase, MonitorType.UPPER_THRESHOLD,
                round(nominal_V * (1 + SUPPLY_TOLERANCE), 1), 4, True)
            add(evse_id, "Voltage", phase, MonitorType.LOWER_THRESHOLD,
                round(nominal_V * (1 - SUPPLY_TOLERANCE), 1), 4, True)
        add(evse_id, "AvailabilityState", None, MonitorType.DELTA, 0, 8, False)
    return presets


def read_state(store) -> dict[str, Any]:
    """The persisted monitoring state, with defaults for what was never stored."""
    state = store.get(STATE_KEY) or {}
    return {"base": state.get("base", DEFAULT_BASE), "level": state.get("level", DEFAULT_LEVEL),
            "next_id": state.get("next_id", FIRST_CUSTOM_ID), "custom": state.get("custom", []),
            "removed": state.get("removed", []), "tripped": state.get("tripped", []),
            # Trips the CSMS was told of. Stored before this key existed: all of them (a cleared event
            # too many is harmless; one too few leaves the CSMS holding a problem that is gone).
            "reported": state.get("reported", state.get("tripped", []))}


def monitoring_variables(store) -> dict[str, Callable[[], Any]]:
    """``computed`` entries for MonitoringCtrlr.ActiveMonitoringBase and ActiveMonitoringLevel.

    Read from the state store, so the device model can be built before ``Monitoring``.
    """
    return {"MonitoringCtrlr.ActiveMonitoringBase": lambda: read_state(store)["base"],
            "MonitoringCtrlr.ActiveMonitoringLevel": lambda: read_state(store)["level"]}


def as_number(text: str) -> float | None:
    """A reported value as a number, or None when it is not one."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def monitor_problem(entry: Entry, kind: MonitorType, value: float, severity: int) -> str | None:
    """What makes this monitor impossible on this variable (the reason of a Rejected), or None."""
    if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= 9:
        return f"severity {severity} is not 0-9"
    characteristics = entry.characteristics
    if kind in THRESHOLDS:
        if characteristics.data_type not in NUMERIC:
            return f"a threshold needs a numeric variable; {entry.name} is {characteristics.data_type.value}"
        low, high = characteristics.min_limit, characteristics.max_limit
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{value:g} is outside {entry.name}'s range {low}..{high}"  # N04.FR.06
    elif kind is MonitorType.DELTA:
        if value < 0:
            return "a delta must not be negative"  # N04.FR.14
    elif value < MIN_PERIOD_S or (kind is MonitorType.PERIODIC_CLOCK_ALIGNED and value > DAY_S):
        return f"a period must be {MIN_PERIOD_S:g} s or more" + (" and at most a day" if value > DAY_S else "")
    return None

