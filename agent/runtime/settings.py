"""The station-level settings store: every value the CSMS may change, kept once.

OCPP 1.6 configuration keys and OCPP 2.0.1 device-model variables are two names
for the same setting; each ``SettingDef`` carries both, so the protocol adapters
translate names and never keep a second copy of a value. Precedence: a value the
CSMS set (persisted in the state store) wins over the config file, which wins
over the built-in default. Read-only settings are capabilities of this firmware
or of the station (e.g. NumberOfConnectors): neither the CSMS nor the config
file sets them. The station's OCPP version picks the defaults where 2.0.1's differ
(``default_201``) and the 2.0.1-only settings 1.6 ties to another key (``follows_16``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

_PREFIX = "setting:"

CSL = tuple
"""Kind of a comma-separated-list setting: held as a tuple of strings, rendered "a,b,c"."""

INT_MAX = 2**31 - 1
"""OCPP integers are 32-bit signed; a larger value is a typo, not an interval."""

MEASURANDS: tuple[str, ...] = (
    "Current.Export", "Current.Import", "Current.Offered",
    "Energy.Active.Export.Register", "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register", "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval", "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval", "Energy.Reactive.Import.Interval",
    "Frequency", "Power.Active.Export", "Power.Active.Import", "Power.Factor", "Power.Offered",
    "Power.Reactive.Export", "Power.Reactive.Import", "RPM", "SoC", "Temperature", "Voltage",
)
"""The OCPP 1.6 Measurand enumeration, in spec order."""

PHASES: tuple[str, ...] = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
"""The OCPP 1.6 Phase enumeration."""

FEATURE_PROFILES: tuple[str, ...] = (
    "Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation", "SmartCharging", "RemoteTrigger",
)
"""The OCPP 1.6 feature profiles a station may list in SupportedFeatureProfiles."""

TX_START_POINTS: tuple[str, ...] = ("EVConnected", "Authorized", "PowerPathClosed")
"""The 2.0.1 TxStartPoint values this station can honour."""

TX_STOP_POINTS: tuple[str, ...] = ("EVConnected", "Authorized", "PowerPathClosed", "EnergyTransfer")
"""The 2.0.1 TxStopPoint values this station can honour."""

PHASE_ROTATIONS: tuple[str, ...] = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
"""Values of one ConnectorPhaseRotation item after "<connectorId>."."""

# Firmware capabilities; each *MaxLength key reports the limit its list enforces,
# so both are built from the same constant.
MEASURAND_LIST_MAX_ITEMS = 10
PHASE_ROTATION_MAX_ITEMS = 10
FEATURE_PROFILES_MAX_ITEMS = len(FEATURE_PROFILES)
# Room for every 1.6 key of all profiles (about 55), so a CSMS that names them all is served.
GET_CONFIGURATION_MAX_KEYS = 100

_SAME = object()  # SettingDef.default_201 when 2.0.1's default is 1.6's
DEVICE_MODEL_VERSIONS = frozenset({"2.0.1", "2.1"})  # settings are the 2.0.1 device model's: default_201 applies


@dataclass(frozen=True)
class SettingDef:
    """One setting: its neutral name, type, bounds and OCPP names.

    ``kind`` is int, bool, str or CSL. A CSL setting may limit its item count
    (``max_items``), restrict items to ``allowed`` values (``phase_suffix``
    lets an allowed item carry a phase, as in "Voltage.L1"), or check each item
    with ``item_check`` (raises ValueError). A ``secret`` value is write-only:
    it is never reported to the CSMS nor logged.
    """

    name: str
    kind: type
    default: Any
    ocpp16: str | None = None
    ocpp201: str | None = None  # "Component.Variable"
    readonly: bool = False
    reboot_required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    max_items: int | None = None
    allowed: tuple[str, ...] | None = None
    phase_suffix: bool = False
    item_check: Callable[[str], None] | None = None
    secret: bool = False
    default_201: Any = _SAME
    # Under 1.6 (or no version), until set, the value of this setting (whose listeners hear the changes).
    follows_16: str | None = None

    def default_for(self, ocpp_version: str | None) -> Any:
        """The default under ``ocpp_version`` (None: 1.6's)."""
        return self.default if ocpp_version not in DEVICE_MODEL_VERSIONS or self.default_201 is _SAME else self.default_201


def _check_phase_rotation(item: str) -> None:
    """One ConnectorPhaseRotation item: "<connectorId>.<rotation>", e.g. "1.RST"."""
    connector, _, rotation = item.partition(".")
    if not (connector.isascii() and connector.isdigit()) or rotation not in PHASE_ROTATIONS:
        raise ValueError(
            f"expected <connectorId>.<rotation> with rotation one of {', '.join(PHASE_ROTATIONS)}, got {item!r}"
        )


def _check_slot(item: str) -> None:
    """One NetworkConfigurationPriority item: a configuration slot number (0-7)."""
    if not (item.isascii() and item.isdigit() and int(item) < 8):
        raise ValueError(f"expected a configuration slot 0-7, got {item!r}")


def _flag(name: str, ocpp16: str, ocpp201: str | None, default: bool) -> SettingDef:
    """A read-write boolean key."""
    return SettingDef(name, bool, default, ocpp16, ocpp201)


def _count(name: str, ocpp16: str, ocpp201: str | None, default: int, **bounds: int) -> SettingDef:
    """A read-write non-negative integer key (seconds, Wh, counts)."""
    return SettingDef(name, int, default, ocpp16, ocpp201, minimum=bounds.get("minimum", 0),
                      maximum=bounds.get("maximum"))


def _limit(name: str, ocpp16: str, value: int) -> SettingDef:
    """A read-only integer that reports a limit of this firmware."""
    return SettingDef(name, int, value, ocpp16, readonly=True)


def _measurands(name: str, ocpp16: str | None, ocpp201: str | None, default: tuple, **extra: Any) -> SettingDef:
    """A read-write list of measurands, limited to MEASURAND_LIST_MAX_ITEMS."""
    return SettingDef(name, CSL, default, ocpp16, ocpp201, max_items=MEASURAND_LIST_MAX_ITEMS,
                      allowed=MEASURANDS, **extra)


_ENERGY = ("Energy.Active.Import.Register",)

# OCPP 1.6 Core profile keys in spec order (section 9.1), then 2.0.1-only settings.
SETTINGS: tuple[SettingDef, ...] = (
    _flag("allow_offline_tx_for_unknown_id", "AllowOfflineTxForUnknownId",
          "AuthCtrlr.OfflineTxForUnknownIdEnabled", False),
    _flag("authorization_cache_enabled", "AuthorizationCacheEnabled", "AuthCacheCtrlr.Enabled", True),
    _flag("authorize_remote_tx_requests", "AuthorizeRemoteTxRequests", "AuthCtrlr.AuthorizeRemoteStart", False),
    _count("blink_repeat", "BlinkRepeat", None, 3),
    _count("clock_aligned_data_interval_s", "ClockAlignedDataInterval", "AlignedDataCtrlr.Interval", 0,
           maximum=86400),  # aligned to midnight: a longer interval never repeats
    _count("connection_timeout_s", "ConnectionTimeOut", "TxCtrlr.EVConnectionTimeOut", 60),
    SettingDef("connector_phase_rotation", CSL, ("0.Unknown",), "ConnectorPhaseRotation",
               max_items=PHASE_ROTATION_MAX_ITEMS, item_check=_check_phase_rotation),
    _limit("connector_phase_rotation_max_length", "ConnectorPhaseRotationMaxLength", PHASE_ROTATION_MAX_ITEMS),
    _limit("get_configuration_max_keys", "GetConfigurationMaxKeys", GET_CONFIGURATION_MAX_KEYS),
    _count("heartbeat_interval_s", "HeartbeatInterval", "OCPPCommCtrlr.HeartbeatInterval", 300, minimum=1),
    _count("light_intensity_percent", "LightIntensity", None, 100, maximum=100),
    _flag("local_authorize_offline", "LocalAuthorizeOffline", "AuthCtrlr.LocalAuthorizeOffline", True),
    _flag("local_pre_authorize", "LocalPreAuthorize", "AuthCtrlr.LocalPreAuthorize", False),
    _count("max_energy_on_invalid_id_Wh", "MaxEnergyOnInvalidId", "TxCtrlr.MaxEnergyOnInvalidId", 0),
    _measurands("meter_values_aligned_data", "MeterValuesAlignedData", "AlignedDataCtrlr.Measurands", _ENERGY),
    _limit("meter_values_aligned_data_max_length", "MeterValuesAlignedDataMaxLength", MEASURAND_LIST_MAX_ITEMS),
    # Only this key's spec text allows a phase ("Voltage.L1").
    _measurands("meter_values_sampled_data", "MeterValuesSampledData", "SampledDataCtrlr.TxUpdatedMeasurands",
                _ENERGY, phase_suffix=True),
    _limit("meter_values_sampled_data_max_length", "MeterValuesSampledDataMaxLength", MEASURAND_LIST_MAX_ITEMS),
    _count("meter_value_sample_interval_s", "MeterValueSampleInterval", "SampledDataCtrlr.TxUpdatedInterval", 60),
    _count("minimum_status_duration_s", "MinimumStatusDuration", None, 0),
    SettingDef("number_of_connectors", int, 1, "NumberOfConnectors", readonly=True, minimum=1),
    _count("reset_retries", "ResetRetries", "OCPPCommCtrlr.ResetRetries", 1),
    _flag("stop_transaction_on_ev_side_disconnect", "StopTransactionOnEVSideDisconnect",
          "TxCtrlr.StopTxOnEVSideDisconnect", True),
    _flag("stop_transaction_on_invalid_id", "StopTransactionOnInvalidId", "TxCtrlr.StopTxOnInvalidId", True),
    _measurands("stop_txn_aligned_data", "StopTxnAlignedData", "AlignedDataCtrlr.TxEndedMeasurands", ()),
    _limit("stop_txn_aligned_data_max_length", "StopTxnAlignedDataMaxLength", MEASURAND_LIST_MAX_ITEMS),
    # 2.0.1 bills from the energy register in its Started and Ended events; 1.6 has meterStart/meterStop.
    _measurands("stop_txn_sampled_data", "StopTxnSampledData", "SampledDataCtrlr.TxEndedMeasurands", (),
                default_201=_ENERGY),
    _limit("stop_txn_sampled_data_max_length", "StopTxnSampledDataMaxLength", MEASURAND_LIST_MAX_ITEMS),
    SettingDef("supported_feature_profiles", CSL, ("Core",), "SupportedFeatureProfiles", readonly=True,
               max_items=FEATURE_PROFILES_MAX_ITEMS, allowed=FEATURE_PROFILES),
    _limit("supported_feature_profiles_max_length", "SupportedFeatureProfilesMaxLength", FEATURE_PROFILES_MAX_ITEMS),
    _count("transaction_message_attempts", "TransactionMessageAttempts",
           "OCPPCommCtrlr.MessageAttemptsTransactionEvent", 3),
    _count("transaction_message_retry_interval_s", "TransactionMessageRetryInterval",
           "OCPPCommCtrlr.MessageAttemptIntervalTransactionEvent", 60),
    _flag("unlock_connector_on_ev_side_disconnect", "UnlockConnectorOnEVSideDisconnect", None, True),
    _count("websocket_ping_interval_s", "WebSocketPingInterval", "OCPPCommCtrlr.WebSocketPingInterval", 30),
    # OCPP 2.0.1 only: the reconnect back-off (1.6 leaves it to the station).
    SettingDef("retry_backoff_wait_minimum_s", int, 3, None, "OCPPCommCtrlr.RetryBackOffWaitMinimum", minimum=0),
    SettingDef("retry_backoff_random_range_s", int, 10, None, "OCPPCommCtrlr.RetryBackOffRandomRange", minimum=0),
    SettingDef("retry_backoff_repeat_times", int, 5, None, "OCPPCommCtrlr.RetryBackOffRepeatTimes", minimum=0),
    # OCPP 2.0.1 only: the Started event's meter values (Transaction.Begin), and how often the Ended event's are
    # sampled (1.6: every MeterValueSampleInterval; 2.0.1 by default only at start and end: a small Ended event).
    _measurands("tx_started_measurands", None, "SampledDataCtrlr.TxStartedMeasurands", (), default_201=_ENERGY),
    SettingDef("tx_ended_interval_s", int, 0, None, "SampledDataCtrlr.TxEndedInterval", minimum=0,
               follows_16="meter_value_sample_interval_s"),
    # OCPP 2.0.1 only: when a transaction starts and ends (agent.core.charging.evse). Any listed start point
    # starts it, losing any listed stop point ends it. ParkingBayOccupancy needs a sensor this station
    # lacks, and EnergyTransfer as a start point would need energy to flow before the transaction.
    # 1.6 always behaves as the defaults (and StopTransactionOnEVSideDisconnect).
    SettingDef("tx_start_point", CSL, ("PowerPathClosed",), None, "TxCtrlr.TxStartPoint", max_items=3,
               allowed=TX_START_POINTS),
    SettingDef("tx_stop_point", CSL, ("Authorized",), None, "TxCtrlr.TxStopPoint", max_items=4,
               allowed=TX_STOP_POINTS),
    # A card whose groupIdToken is this may stop any transaction but start none ("" = no master pass).
    SettingDef("master_pass_group_id", str, "", None, "AuthCtrlr.MasterPassGroupId", maximum=36),
    # Security (1.6 security extension, 2.0.1 block A). The CSO's organization: the O= of the
    # station certificate's signing request (1.6 CpoName, 2.0.1 OrganizationName).
    # (minimum/maximum of a str setting bound its length; the 2.0.1 device model checks them.)
    SettingDef("organization_name", str, "", "CpoName", "SecurityCtrlr.OrganizationName", maximum=64),
    # Write-only: set by the CSMS (1.6 AuthorizationKey, 2.0.1 BasicAuthPassword), used from the next
    # connection, never read back or logged. Empty: the config file's csms.password applies.
    SettingDef("basic_auth_password", str, "", "AuthorizationKey", "SecurityCtrlr.BasicAuthPassword",
               secret=True, minimum=16, maximum=40),
    # The connection's security profile. Initially the config file's csms.security_profile; the CSMS
    # may only raise it (agent.core.management.network guards the change) and it applies from the next connection.
    # (In 2.0.1 the variable is read-only, a mirror of this: the CSMS raises it with SetNetworkProfile.)
    SettingDef("security_profile", int, 0, "SecurityProfile", None, minimum=0, maximum=3),
    # Station certificate signing (agent.core.management.station_certificate): how long to wait for
    # CertificateSigned after a SignCertificate, and how many times to ask again.
    _count("cert_signing_wait_minimum_s", "CertSigningWaitMinimum", "SecurityCtrlr.CertSigningWaitMinimum", 60),
    _count("cert_signing_repeat_times", "CertSigningRepeatTimes", "SecurityCtrlr.CertSigningRepeatTimes", 3),
    SettingDef("certificate_signed_max_chain_size", int, 10000, "CertificateSignedMaxChainSize",
               "SecurityCtrlr.MaxCertificateChainSize", readonly=True),
    SettingDef("certificate_store_max_length", int, 20, "CertificateStoreMaxLength", None, readonly=True),
    SettingDef("additional_root_certificate_check", bool, False, "AdditionalRootCertificateCheck", None,
               readonly=True),
    # OCPP 2.0.1 network connection profiles (agent.core.management.network): the slots to try, in order, and
    # how many failed attempts on one slot before falling back to the next.
    SettingDef("network_configuration_priority", CSL, ("0",), None, "OCPPCommCtrlr.NetworkConfigurationPriority",
               max_items=8, item_check=lambda item: _check_slot(item)),
    _count("network_profile_connection_attempts", None, "OCPPCommCtrlr.NetworkProfileConnectionAttempts", 3,
           minimum=1),
    # OCPP 2.0.1 display messages and running cost (agent.core.device_model.display_messages). Switched off, the
    # station refuses new messages and shows neither the installed ones nor the cost.
    SettingDef("display_messages_enabled", bool, True, None, "DisplayMessageCtrlr.Enabled"),
    SettingDef("total_cost_enabled", bool, True, None, "TariffCostCtrlr.Enabled[Cost]"),
    # ISO 4217 code shown after the running cost ("Cost: 4.27 EUR").
    SettingDef("currency", str, "EUR", None, "TariffCostCtrlr.Currency", minimum=3, maximum=3),
    # 1.6 Smart Charging profile: the limits this station's engine works within.
    SettingDef("charge_profile_max_stack_level", int, 10, "ChargeProfileMaxStackLevel", None, readonly=True),
    SettingDef("charging_schedule_allowed_charging_rate_unit", CSL, ("Current", "Power"),
               "ChargingScheduleAllowedChargingRateUnit", None, readonly=True, max_items=2),
    SettingDef("charging_schedule_max_periods", int, 24, "ChargingScheduleMaxPeriods", None, readonly=True),
    SettingDef("max_charging_profiles_installed", int, 32, "MaxChargingProfilesInstalled", None, readonly=True),
    # 1.6 Reservation profile: a reservation for "any connector" (connectorId 0) is supported.
    SettingDef("reserve_connector_zero_supported", bool, True, "ReserveConnectorZeroSupported", None,
               readonly=True),
    # 1.6 Local Auth List Management profile (agent.core.charging.local_list). The list's size limit has no
    # 2.0.1 setting (there it is the maxLimit of LocalAuthListCtrlr.Entries, a station variable).
    _flag("local_auth_list_enabled", "LocalAuthListEnabled", "LocalAuthListCtrlr.Enabled", True),
    _limit("local_auth_list_max_length", "LocalAuthListMaxLength", 10000),
    SettingDef("send_local_list_max_length", int, 10000, "SendLocalListMaxLength",
               "LocalAuthListCtrlr.ItemsPerMessage", readonly=True),
    # OCPP 2.0.1 variable monitoring (agent.core.device_model.monitoring). Disabled, no monitor reports anything.
    # While offline, events of monitors with a severity number at most OfflineQueuingSeverity wait for
    # the connection (0 Danger ... 9 Debug); the others are dropped.
    SettingDef("monitoring_enabled", bool, True, None, "MonitoringCtrlr.Enabled"),
    SettingDef("offline_queuing_severity", int, 4, None, "MonitoringCtrlr.OfflineQueuingSeverity",
               minimum=0, maximum=9),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
SETTINGS_BY_OCPP16 = {s.ocpp16: s for s in SETTINGS if s.ocpp16}
SETTINGS_BY_OCPP201 = {s.ocpp201: s for s in SETTINGS if s.ocpp201}


def coerce_setting(definition: SettingDef, value: Any) -> Any:
    """Convert a value from TOML or an OCPP string to the setting's type; ValueError if it does not fit.

    OCPP carries every value as a string ("300", "true", "a,b"), TOML as native
    types (a CSL also as an array of strings); both are accepted so the same
    check serves the config file and the CSMS. A read-only setting accepts no
    value at all: the firmware or the station supplies it.
    """
    if definition.readonly:
        raise ValueError("read-only: supplied by the station, cannot be set")
    return _convert(definition, value)


def render_setting(definition: SettingDef, value: Any) -> str:
    """The OCPP string form of a value: "true"/"false", decimal integers, "a,b,c"."""
    if definition.kind is bool:
        return "true" if value else "false"
    if definition.kind is CSL:
        return ",".join(value)
    return str(value)


def _convert(definition: SettingDef, value: Any) -> Any:
    """Type conversion and bounds, without the read-only rule (also used for computed values)."""
    if definition.kind is bool:
        return _to_bool(value)
    if definition.kind is int:
        return _check_range(definition, _to_int(value))
    if definition.kind is CSL:
        return _to_csl(definition, value)
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {value!r}")
    return _check_length(definition, str(value))


def _check_length(definition: SettingDef, value: str) -> str:
    """A string setting's minimum/maximum bound its length (the value itself may be secret: not quoted).

    The default (e.g. "" for "no password set by the CSMS") always fits.
    """
    if value == definition.default:
        return value
    if definition.minimum is not None and len(value) < definition.minimum:
        raise ValueError(f"must be at least {definition.minimum} characters long, got {len(value)}")
    if definition.maximum is not None and len(value) > definition.maximum:
        raise ValueError(f"must be at most {definition.maximum} characters long, got {len(value)}")
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {value!r}")


def _to_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _check_range(definition: SettingDef, value: int) -> int:
    if definition.minimum is not None and value < definition.minimum:
        raise ValueError(f"must be at least {definition.minimum}, got {value}")
    maximum = INT_MAX if definition.maximum is None else definition.maximum
    if value > maximum:
        raise ValueError(f"must be at most {maximum}, got {value}")
    return value


def _to_csl(definition: SettingDef, value: Any) -> tuple[str, ...]:
    """Split, trim and check a comma-separated list; "" is the empty list."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ValueError(f"expected a comma-separated list, got {value!r}")
    if "" in items:
        raise ValueError(f"empty item in the list {value!r}")
    if definition.max_items is not None and len(items) > definition.max_items:
        raise ValueError(f"at most {definition.max_items} items, got {len(items)}")
    for item in items:
        _check_item(definition, item)
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise ValueError(f"listed more than once: {', '.join(repeated)}")
    return tuple(items)


def _check_item(definition: SettingDef, item: str) -> None:
    """One CSL item against ``allowed`` (with an optional phase) and ``item_check``."""
    if definition.allowed is not None and not _is_allowed(definition, item):
        import difflib  # only to suggest a fix for a mistake: the running daemon does not carry it
        close = difflib.get_close_matches(item, definition.allowed, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"expected one of {', '.join(definition.allowed)}"
        raise ValueError(f"unknown item {item!r} ({hint})")
    if definition.item_check is not None:
        definition.item_check(item)


def _is_allowed(definition: SettingDef, item: str) -> bool:
    if item in definition.allowed:
        return True
    base, _, phase = item.rpartition(".")
    return definition.phase_suffix and base in definition.allowed and phase in PHASES


class Settings:
    """Live setting values, persisted in the state store when the CSMS changes them.

    ``computed`` maps the names of read-only settings the station knows at run
    time (``number_of_connectors``, ``supported_feature_profiles``) to zero-argument
    callables; ``catalog`` replaces SETTINGS (tests); ``ocpp_version`` picks the defaults.
    """

    def __init__(
        self,
        store,
        *,
        initial: Mapping[str, Any] | None = None,
        computed: Mapping[str, Callable[[], Any]] | None = None,
        catalog: Iterable[SettingDef] = SETTINGS,
        ocpp_version: str | None = None,
    ):
        self._store = store
        self.catalog: tuple[SettingDef, ...] = tuple(catalog)
        self._by_name = {s.name: s for s in self.catalog}
        self._computed = self._checked_computed(computed or {})
        self._values = {s.name: s.default_for(ocpp_version) for s in self.catalog}
        only_16 = ocpp_version not in DEVICE_MODEL_VERSIONS
        self._following = {s.name: s.follows_16 for s in self.catalog if s.follows_16 and only_16}
        for name, value in (initial or {}).items():
            self._values[name] = coerce_setting(self.definition(name), value)
            self._following.pop(name, None)
        self._load_persisted()
        self._listeners: list[Callable[[str, Any], None]] = []
        self._guards: dict[str, Callable[[Any, Any], None]] = {}

    def _checked_computed(self, computed: Mapping[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
        for name in computed:
            if not self.definition(name).readonly:
                # A computed value would silently hide every value set for a writable setting.
                raise ValueError(f"setting {name!r} is writable; only read-only settings can be computed")
        return dict(computed)

    def _load_persisted(self) -> None:
        for definition in self.catalog:
            persisted = self._store.get(_PREFIX + definition.name)
            if persisted is None:
                continue
            try:
                self._values[definition.name] = coerce_setting(definition, persisted)
                self._following.pop(definition.name, None)
            except ValueError as exc:
                # Stored by an older firmware whose catalog allowed it: starting on the
                # file or default value beats refusing to start.
                log.warning("ignoring the stored value of setting %s: %s", definition.name, exc)

    def definition(self, name: str) -> SettingDef:
        """The definition of setting ``name``; KeyError if there is none."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown setting {name!r}") from None

    def __getitem__(self, name: str) -> Any:
        """The current value; a computed setting asks the station each time."""
        supplier = self._computed.get(name)
        if supplier is not None:
            return _convert(self._by_name[name], supplier())
        followed = self._following.get(name)
        return self._values[name] if followed is None else self[followed]

    def set(self, name: str, value: Any) -> Any:
        """Validate, persist and apply a new value; return it coerced. ValueError if invalid.

        Nothing is stored or changed when the value is refused.
        """
        definition = self.definition(name)
        coerced = coerce_setting(definition, value)
        guard = self._guards.get(name)
        if guard is not None:
            guard(self[name], coerced)
        return self._apply(definition, coerced, "changed")

    def _apply(self, definition: SettingDef, coerced: Any, verb: str) -> Any:
        self._store.put(_PREFIX + definition.name, coerced)
        self._values[definition.name] = coerced
        self._following.pop(definition.name, None)
        shown = "(secret)" if definition.secret else render_setting(definition, coerced)
        log.info("setting %s %s to %s", definition.name, verb, shown)
        self._notify(definition.name, coerced)
        return coerced

    def _notify(self, name: str, value: Any) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, value)
            except Exception:
                # The value is already stored and applied; one broken consumer must
                # neither hide it from the others nor make the change look failed.
                log.exception("listener for setting %s failed", name)

    def restore(self, name: str, value: Any) -> Any:
        """Set ``value`` without asking the guard: for undoing a guarded change that did not work out."""
        definition = self.definition(name)
        return self._apply(definition, coerce_setting(definition, value), "restored")

    def guard(self, name: str, check: Callable[[Any, Any], None]) -> None:
        """Have ``check(current, new)`` approve every change of ``name``; it raises ValueError to refuse.

        For rules that depend on the station's state rather than the value alone
        (a security profile may only go up, and only when its certificates are there).
        """
        self.definition(name)
        self._guards[name] = check

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(name, value)`` after every change."""
        self._listeners.append(listener)

    def __repr__(self) -> str:
        return f"<Settings {len(self._values)} values, {len(self._computed)} computed>"
