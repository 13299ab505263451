"""What the device model holds: every 2.0.1 setting, and the station variables it can answer truthfully.

Two sources make up the variables:

* every ``SettingDef`` with an ``ocpp201`` name ("Component.Variable", optionally
  "Component.Variable[Instance]"): its value is the setting, so OCPP 1.6 and
  2.0.1 read and write one value;
* ``STATION_VARIABLES``: read-only facts of the station. Each is a firmware
  constant (``default``), a mirror of a setting (``mirrors``), or a value only
  the caller knows (live state, config-file facts), present only when the
  caller supplies it. The caller may also replace a constant.

A setting wins over a station variable of the same name: it is the value the
CSMS may change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from agent.core.device_model.datatypes import (
    Characteristics,
    ComponentId,
    DataType,
    Mutability,
    variable_key,
)
from agent.runtime.settings import CSL, MEASURANDS, SettingDef

COMPONENT_ORDER: tuple[str, ...] = (
    "OCPPCommCtrlr", "SampledDataCtrlr", "AlignedDataCtrlr", "TxCtrlr", "AuthCtrlr", "AuthCacheCtrlr",
    "LocalAuthListCtrlr", "SecurityCtrlr", "DeviceDataCtrlr", "ClockCtrlr", "ReservationCtrlr",
    "SmartChargingCtrlr", "ChargingStation", "EVSE", "Connector",
)
"""Report order of the components; a component only the settings name comes after the controllers."""

PER_EVSE = ("EVSE", "Connector")
CONNECTOR_ID = 1  # one connector per EVSE on this station

AVAILABILITY_STATES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")
FILE_TRANSFER_PROTOCOLS = ("FTP", "FTPS", "HTTP", "HTTPS", "SFTP")
DEVICE_DATA_MESSAGES = ("GetReport", "GetVariables", "SetVariables")
MONITORING_MESSAGES = ("ClearVariableMonitoring", "SetVariableMonitoring")
MONITORING_BASES = ("All", "FactoryDefault", "HardWiredOnly")
# Instances of EVSE.Voltage: one per phase of the EVSE's supply, as OCPP names phase-to-neutral voltages.
VOLTAGE_PHASES = ("L1-N", "L2-N", "L3-N")
# Instances of EVSE.Current: one per phase, as OCPP names line currents.
CURRENT_PHASES = ("L1", "L2", "L3")

# Limits of incoming GetReport/GetVariables/SetVariables requests the 2.0.1
# adapter enforces (B06.FR.16/17, B05, B08); generous for a station this size.
ITEMS_PER_MESSAGE = 100
BYTES_PER_MESSAGE = 65536

# OCPP 2.0.1 dropped these two from MeasurandEnumType: offering them would let a
# CSMS configure a measurand the 2.0.1 messages cannot carry.
MEASURANDS_201 = tuple(m for m in MEASURANDS if m not in ("RPM", "Temperature"))

# Units follow the unit suffix of the setting name (STYLE: units in names).
_UNIT_SUFFIXES = (("_s", "s"), ("_Wh", "Wh"), ("_W", "W"), ("_A", "A"), ("_percent", "Percent"))

SUPPLIED = object()
"""``StationVariable.default`` of a variable only the caller can answer."""


@dataclass(frozen=True)
class StationVariable:
    """A read-only variable that is not a setting. ``component`` "EVSE"/"Connector" means one per EVSE."""

    component: str
    name: str
    characteristics: Characteristics
    instance: str | None = None
    default: Any = SUPPLIED
    mirrors: str | None = None  # name of the setting whose value it reports
    constant: bool = False  # never changes while the agent runs


@dataclass(frozen=True)
class Entry:
    """One variable of one component instance, with where its value comes from."""

    component: ComponentId
    name: str
    instance: str | None
    characteristics: Characteristics
    mutability: Mutability
    persistent: bool
    constant: bool
    setting: SettingDef | None = None
    supply: Callable[[], Any] | None = None

    @property
    def key(self) -> str:
        """The variable's key (see ``variable_key``)."""
        return variable_key(self.component.name, self.name, evse_id=self.component.evse_id,
                            connector_id=self.component.connector_id, variable_instance=self.instance)

    def variable_dict(self) -> dict[str, Any]:
        """The 2.0.1 VariableType as a dict."""
        return {"name": self.name} if self.instance is None else {"name": self.name, "instance": self.instance}


def _bool(component: str, name: str, default: Any = SUPPLIED, *, monitored: bool = False,
          **extra: Any) -> StationVariable:
    return StationVariable(component, name, Characteristics(DataType.BOOLEAN, supports_monitoring=monitored),
                           default=default, **extra)


def _int(component: str, name: str, *, unit: str | None = None, low: int | None = None, high: int | None = None,
         **extra: Any) -> StationVariable:
    return StationVariable(component, name, Characteristics(DataType.INTEGER, unit, low, high), **extra)


def _list(component: str, name: str, kind: DataType, values: tuple[str, ...], *, monitored: bool = False,
          **extra: Any) -> StationVariable:
    # ``monitored``: agent.core.device_model.monitoring watches it (supportsMonitoring in reports).
    return StationVariable(component, name, Characteristics(kind, values_list=values, supports_monitoring=monitored),
                           **extra)


def _device_data_limits() -> list[StationVariable]:
    """DeviceDataCtrlr.ItemsPerMessage/BytesPerMessage: 2.0.1 names the message in the variable instance."""
    limits = []
    for message in DEVICE_DATA_MESSAGES:
        limits.append(_int("DeviceDataCtrlr", "ItemsPerMessage", low=1, instance=message,
                           default=ITEMS_PER_MESSAGE, constant=True))
        limits.append(_int("DeviceDataCtrlr", "BytesPerMessage", low=1, instance=message,
                           default=BYTES_PER_MESSAGE, constant=True))
    return limits


def _monitoring_limits() -> list[StationVariable]:
    """MonitoringCtrlr.ItemsPerMessage/BytesPerMessage of the two monitoring messages the 2.0.1 adapter checks."""
    limits = []
    for message in MONITORING_MESSAGES:
        limits.append(_int("MonitoringCtrlr", "ItemsPerMessage", low=1, instance=message,
                           default=ITEMS_PER_MESSAGE, constant=True))
        limits.append(_int("MonitoringCtrlr", "BytesPerMessage", low=1, instance=message,
                           default=BYTES_PER_MESSAGE, constant=True))
    return limits


STATION_VARIABLES: tuple[StationVariable, ...] = (
    # Config-file facts the caller supplies (the transport reads them from the file, so they are read-only here).
    _int("OCPPCommCtrlr", "MessageTimeout", unit="s", low=1, instance="Default", constant=True),
    _int("OCPPCommCtrlr", "OfflineThreshold", unit="s", low=0, constant=True),
    _list("OCPPCommCtrlr", "FileTransferProtocols", DataType.MEMBER_LIST, FILE_TRANSFER_PROTOCOLS, constant=True),
    *_device_data_limits(),
    StationVariable("ClockCtrlr", "DateTime", Characteristics(DataType.DATE_TIME)),
    # agent.runtime.clock follows the CSMS's currentTime (BootNotification/Heartbeat) over the board clock.
    _list("ClockCtrlr", "TimeSource", DataType.SEQUENCE_LIST, ("Heartbeat",), default=("Heartbeat",), constant=True),
    _int("SecurityCtrlr", "SecurityProfile", low=0, high=3, mirrors="security_profile"),
    StationVariable("SecurityCtrlr", "Identity", Characteristics(DataType.STRING, max_limit=48), constant=True),
    _bool("AuthCtrlr", "Enabled", constant=True),  # False only for a free-vend station
    _bool("AuthCacheCtrlr", "Available", True, constant=True),
    _bool("LocalAuthListCtrlr", "Available", True, constant=True),  # Enabled: the local_auth_list_enabled setting
    _bool("ReservationCtrlr", "Available", True, constant=True),
    _bool("ReservationCtrlr", "Enabled", True, constant=True),
    _bool("SmartChargingCtrlr", "Available", True, constant=True),
    _bool("SmartChargingCtrlr", "Enabled", True, constant=True),
    # Display messages (agent.core.device_model.display_messages): Available only with a display; DisplayMessages is
    # how many are installed, its maxLimit how many may be (the core enforces this limit); the formats
    # are those the fitted display can render. Enabled is the display_messages_enabled setting.
    _bool("DisplayMessageCtrlr", "Available"),
    _int("DisplayMessageCtrlr", "DisplayMessages", low=0, high=32),
    _list("DisplayMessageCtrlr", "SupportedFormats", DataType.MEMBER_LIST, ("ASCII", "HTML", "URI", "UTF8")),
    _list("DisplayMessageCtrlr", "SupportedPriorities", DataType.MEMBER_LIST,
          ("AlwaysFront", "InFront", "NormalCycle"), default=("AlwaysFront", "InFront", "NormalCycle"), constant=True),
    # CostUpdated's running cost is shown; tariffs (2.0.1 I01-I03 texts) are not. Enabled[Cost] and
    # Currency are settings.
    _bool("TariffCostCtrlr", "Available", True, instance="Cost", constant=True),
    _bool("SampledDataCtrlr", "Enabled", True, constant=True),
    # The meters' energy register is the total of all phases: no per-phase register values are sent.
    _bool("SampledDataCtrlr", "RegisterValuesWithoutPhases", True, constant=True),
    # (TxStartedMeasurands, TxEndedMeasurands, TxEndedInterval, TxUpdated*: settings.)
    _bool("AlignedDataCtrlr", "Enabled", True, constant=True),
    _int("AlignedDataCtrlr", "TxEndedInterval", unit="s", low=0, mirrors="clock_aligned_data_interval_s"),
    _list("ChargingStation", "AvailabilityState", DataType.OPTION_LIST, AVAILABILITY_STATES, monitored=True),
    _bool("ChargingStation", "Available", True, constant=True),
    _int("ChargingStation", "SupplyPhases", low=0, high=3, constant=True),
    _bool("ChargingStation", "Problem", monitored=True),
    _list("EVSE", "AvailabilityState", DataType.OPTION_LIST, AVAILABILITY_STATES, monitored=True),
    _bool("EVSE", "Available", True, constant=True),
    StationVariable("EVSE", "Power", Characteristics(DataType.DECIMAL, "W", 0, supports_monitoring=True)),
    _int("EVSE", "SupplyPhases", low=0, high=3, constant=True),
    _bool("EVSE", "Problem", monitored=True),
    _list("Connector", "AvailabilityState", DataType.OPTION_LIST, AVAILABILITY_STATES, monitored=True),
    _bool("Connector", "Available", True, constant=True),
    StationVariable("Connector", "ConnectorType", Characteristics(DataType.STRING), constant=True),
    _int("Connector", "SupplyPhases", low=0, high=3, constant=True),
    # The supply voltage per phase from the EVSE meter's last reading (device_model.station.meter_suppliers);
    # agent.core.device_model.monitoring evaluates its monitors at every reading.
    *(StationVariable("EVSE", "Voltage", Characteristics(DataType.DECIMAL, "V", 0, supports_monitoring=True),
                      instance=phase) for phase in VOLTAGE_PHASES),
    # The current per phase from the same reading, so a monitor can watch what the EV draws.
    *(StationVariable("EVSE", "Current", Characteristics(DataType.DECIMAL, "A", 0, supports_monitoring=True),
                      instance=phase) for phase in CURRENT_PHASES),
    # Variable monitoring (agent.core.device_model.monitoring). Enabled and OfflineQueuingSeverity are settings; the
    # active base and level change only through SetMonitoringBase / SetMonitoringLevel, so they are read-only.
    _bool("MonitoringCtrlr", "Available", True, constant=True),
    *_monitoring_limits(),
    _list("MonitoringCtrlr", "ActiveMonitoringBase", DataType.OPTION_LIST, MONITORING_BASES),
    _int("MonitoringCtrlr", "ActiveMonitoringLevel", low=0, high=9),
)


def parse_ocpp201(name: str) -> tuple[str, str, str | None]:
    """Split "Component.Variable" or "Component.Variable[Instance]" into its parts."""
    component, dot, variable = name.partition(".")
    if not dot or not component or not variable:
        raise ValueError(f"expected Component.Variable, got {name!r}")
    instance = None
    if variable.endswith("]") and "[" in variable:
        variable, _, instance = variable[:-1].partition("[")
    return component, variable, instance


def setting_characteristics(definition: SettingDef) -> Characteristics:
    """Characteristics of a setting-backed variable, from the setting's kind and bounds."""
    if definition.kind is bool:
        return Characteristics(DataType.BOOLEAN)
    if definition.kind is int:
        return Characteristics(DataType.INTEGER, _unit(definition.name), definition.minimum, definition.maximum)
    if definition.kind is CSL and definition.allowed is not None:
        allowed = MEASURANDS_201 if definition.allowed == MEASURANDS else definition.allowed
        return Characteristics(DataType.MEMBER_LIST, values_list=allowed)
    # A str setting's minimum/maximum bound its length, as string characteristics do in 2.0.1.
    return Characteristics(DataType.STRING, min_limit=definition.minimum, max_limit=definition.maximum)


def _unit(setting_name: str) -> str | None:
    return next((unit for suffix, unit in _UNIT_SUFFIXES if setting_name.endswith(suffix)), None)


def setting_entry(definition: SettingDef) -> Entry:
    """The variable of one setting: read-write unless read-only, write-only if secret."""
    component, name, instance = parse_ocpp201(definition.ocpp201)
    if definition.readonly:
        mutability = Mutability.READ_ONLY
    else:
        mutability = Mutability.WRITE_ONLY if definition.secret else Mutability.READ_WRITE
    return Entry(ComponentId(component), name, instance, setting_characteristics(definition), mutability,
                 persistent=not definition.readonly, constant=definition.readonly, setting=definition)


def build_entries(settings, evse_ids: Iterable[int], computed: Mapping[str, Callable[[], Any]],
                  max_power_W: Mapping[int, float]) -> list[Entry]:
    """Every variable of the station, in report order. ValueError for a ``computed`` key that names none."""
    entries = [setting_entry(d) for d in settings.catalog if d.ocpp201]
    taken = {e.key.lower() for e in entries}
    candidates = list(_station_candidates(sorted(set(evse_ids)), max_power_W))
    _check_computed(computed, taken, {key for key, _, _ in candidates})
    catalog_names = {d.name for d in settings.catalog}
    for key, entry, var in candidates:
        if key.lower() in taken:
            continue
        supply = _supplier(var, key, settings, computed, catalog_names)
        if supply is not None:
            entries.append(replace(entry, supply=supply))
    return sorted(entries, key=_report_order)


def _station_candidates(evse_ids: list[int], max_power_W: Mapping[int, float]):
    """(key, entry without a supplier, its StationVariable) for every station variable instance."""
    for var in STATION_VARIABLES:
        for component in _instances(var.component, evse_ids):
            characteristics = var.characteristics
            if var.component == "EVSE" and var.name == "Power" and component.evse_id in max_power_W:
                characteristics = replace(characteristics, max_limit=float(max_power_W[component.evse_id]))
            entry = Entry(component, var.name, var.instance, characteristics, Mutability.READ_ONLY,
                          persistent=var.constant or var.mirrors is not None, constant=var.constant)
            yield entry.key, entry, var


def _instances(component: str, evse_ids: list[int]) -> list[ComponentId]:
    if component == "EVSE":
        return [ComponentId("EVSE", evse_id) for evse_id in evse_ids]
    if component == "Connector":
        return [ComponentId("Connector", evse_id, CONNECTOR_ID) for evse_id in evse_ids]
    return [ComponentId(component)]


def _supplier(var: StationVariable, key: str, settings, computed: Mapping[str, Callable[[], Any]],
              catalog_names: set[str]) -> Callable[[], Any] | None:
    """The caller's supplier, else the mirrored setting, else the constant; None: not on this station."""
    if key in computed:
        return computed[key]
    if var.mirrors is not None:
        if var.mirrors not in catalog_names:
            return None
        return lambda: settings[var.mirrors]
    if var.default is not SUPPLIED:
        return lambda: var.default
    return None


def _check_computed(computed: Mapping[str, Callable[[], Any]], settings_keys: set[str], station_keys: set[str]):
    for key in computed:
        if key.lower() in settings_keys:
            # Its value is a setting: a supplier would hide every value the CSMS sets.
            raise ValueError(f"{key} is a setting; a computed read-only setting belongs in Settings(computed=)")
        if key not in station_keys:
            import difflib  # only to suggest a fix for a mistake: the running daemon does not carry it

            close = difflib.get_close_matches(key, sorted(station_keys), n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise ValueError(f"no station variable {key}{hint}")


def _report_order(entry: Entry) -> tuple:
    """Controllers in COMPONENT_ORDER (others after them), the station, then each EVSE followed by its connector."""
    name = entry.component.name
    if name in PER_EVSE:
        return (len(COMPONENT_ORDER), entry.component.evse_id, entry.component.connector_id or 0)
    if name in COMPONENT_ORDER:
        return (COMPONENT_ORDER.index(name), 0, 0)
    return (COMPONENT_ORDER.index("ChargingStation") - 0.5, name.lower(), 0)
