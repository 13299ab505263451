"""The station-level settings store: every value the CSMS may change, kept once.

OCPP 1.6 configuration keys and OCPP 2.0.1 device-model variables are two names
for the same setting; each ``SettingDef`` carries both, so the protocol adapters
translate names and never keep a second copy of a value. Precedence: a value the
CSMS set (persisted in the state store) wins over the config file, which wins
over the built-in default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

_PREFIX = "setting:"


@dataclass(frozen=True)
class SettingDef:
    """One setting: its neutral name, type, bounds and OCPP names."""

    name: str
    kind: type  # int, bool or str
    default: Any
    ocpp16: str | None = None
    ocpp201: str | None = None  # "Component.Variable"
    readonly: bool = False
    reboot_required: bool = False
    minimum: int | None = None
    maximum: int | None = None


SETTINGS: tuple[SettingDef, ...] = (
    SettingDef("heartbeat_interval_s", int, 300, "HeartbeatInterval", "OCPPCommCtrlr.HeartbeatInterval", minimum=1),
    SettingDef(
        "websocket_ping_interval_s", int, 30, "WebSocketPingInterval", "OCPPCommCtrlr.WebSocketPingInterval", minimum=0
    ),
    SettingDef("retry_backoff_wait_minimum_s", int, 3, None, "OCPPCommCtrlr.RetryBackOffWaitMinimum", minimum=0),
    SettingDef("retry_backoff_random_range_s", int, 10, None, "OCPPCommCtrlr.RetryBackOffRandomRange", minimum=0),
    SettingDef("retry_backoff_repeat_times", int, 5, None, "OCPPCommCtrlr.RetryBackOffRepeatTimes", minimum=0),
    SettingDef(
        "meter_value_sample_interval_s", int, 60, "MeterValueSampleInterval", "SampledDataCtrlr.TxUpdatedInterval",
        minimum=0,
    ),
    SettingDef(
        "clock_aligned_data_interval_s", int, 0, "ClockAlignedDataInterval", "AlignedDataCtrlr.Interval", minimum=0
    ),
    SettingDef(
        "transaction_message_attempts", int, 3, "TransactionMessageAttempts",
        "OCPPCommCtrlr.MessageAttemptsTransactionEvent", minimum=0,
    ),
    SettingDef(
        "transaction_message_retry_interval_s", int, 60, "TransactionMessageRetryInterval",
        "OCPPCommCtrlr.MessageAttemptIntervalTransactionEvent", minimum=0,
    ),
    SettingDef("connection_timeout_s", int, 60, "ConnectionTimeOut", "TxCtrlr.EVConnectionTimeOut", minimum=0),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
SETTINGS_BY_OCPP16 = {s.ocpp16: s for s in SETTINGS if s.ocpp16}
SETTINGS_BY_OCPP201 = {s.ocpp201: s for s in SETTINGS if s.ocpp201}


def coerce_setting(definition: SettingDef, value: Any) -> Any:
    """Convert a value from TOML or an OCPP string to the setting's type; ValueError if it does not fit.

    OCPP carries every value as a string ("300", "true"), TOML as native types;
    both are accepted so the same check serves the config file and the CSMS.
    """
    if definition.kind is bool:
        result = _to_bool(value)
    elif definition.kind is int:
        result = _to_int(value)
    else:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"expected a string, got {value!r}")
        result = str(value)
    if definition.kind is int:
        if definition.minimum is not None and result < definition.minimum:
            raise ValueError(f"must be at least {definition.minimum}, got {result}")
        if definition.maximum is not None and result > definition.maximum:
            raise ValueError(f"must be at most {definition.maximum}, got {result}")
    return result


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


class Settings:
    """Live setting values, persisted in the state store when the CSMS changes them."""

    def __init__(self, store, *, initial: dict[str, Any] | None = None):
        self._store = store
        self._values = {s.name: s.default for s in SETTINGS}
        self._values.update(initial or {})
        for definition in SETTINGS:
            persisted = store.get(_PREFIX + definition.name)
            if persisted is not None:
                self._values[definition.name] = persisted
        self._listeners: list[Callable[[str, Any], None]] = []

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def set(self, name: str, value: Any) -> Any:
        """Validate, persist and apply a new value; return it coerced. ValueError if invalid."""
        definition = SETTINGS_BY_NAME[name]
        coerced = coerce_setting(definition, value)
        self._store.put(_PREFIX + name, coerced)
        self._values[name] = coerced
        for listener in list(self._listeners):
            listener(name, coerced)
        return coerced

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(name, value)`` after every change."""
        self._listeners.append(listener)

    def __repr__(self) -> str:
        return f"<Settings {len(self._values)} values>"
