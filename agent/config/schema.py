"""The config schema: one frozen dataclass per TOML section, with each section's own rules.

The schema *is* the dataclasses below: field names are TOML keys, annotations are
the expected types and defaults make keys optional (``agent.config.parsing``
walks the file against them). Names of drivers and device models are not
listed here: ``OneOf`` reads them from the HAL's driver tables and from its
register-map files, so adding either never touches this file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from agent.config.checks import OneOf
from agent.config.web import WebConfig
from agent.runtime.settings import SETTINGS_BY_OCPP16, SETTINGS_BY_OCPP201, coerce_setting
from hal.meters import available_models
from hal.pilots import available_pilot_models
from hal.registry import (
    BACKENDS, DISPLAY_DRIVERS, GPIO_BACKENDS, METER_DRIVERS, PILOT_DRIVERS, RFID_DRIVERS, needs_mock_backend,
)

DEFAULT_CONFIG_PATH = "/etc/ocpp-agent/agent.toml"


# --------------------------------------------------------------------- schema


@dataclass(frozen=True)
class StationConfig:
    """[station]: who this charger is and where it keeps its state."""

    id: str
    data_dir: Path = Path("/var/lib/ocpp-agent")
    vendor: str = "ocpp-agent"
    model: str = "ocpp-agent"
    serial_number: str = ""
    firmware_version: str = ""
    free_vend: bool = False  # private charger: plugging in starts charging, no card needed
    free_vend_id_token: str = "FREEVEND"  # the idTag such sessions are reported with

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        return _station_problems(self)


@dataclass(frozen=True)
class CsmsConfig:
    """[csms]: how to reach the Charging Station Management System."""

    url: str
    ocpp_version: Literal["1.6", "2.0.1", "2.1"] = "1.6"  # subprotocol ocpp1.6, ocpp2.0.1 or ocpp2.1
    security_profile: Literal[0, 1, 2, 3] = 0
    password: str = ""
    ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    connect_timeout_s: float = 10.0
    response_timeout_s: float = 30.0
    ping_timeout_s: float = 10.0

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        return _csms_problems(self)


@dataclass(frozen=True)
class MeterConfig:
    """[evse.meter]: the energy meter of one EVSE."""

    driver: Annotated[str, OneOf(METER_DRIVERS)] = "mock"
    model: Annotated[str, OneOf(available_models)] = "sdm630"  # a register map hal/meters/<model>.toml
    port: str = ""
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    device_id: int = 1
    timeout_s: float = 0.3
    poll_interval_s: float = 1.0

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        return _meter_problems(self)


@dataclass(frozen=True)
class PilotConfig:
    """[evse.pilot]: how the EV's pilot is read and the current offered ("gpio" pins or a Modbus EVSE controller)."""

    driver: Annotated[str, OneOf(PILOT_DRIVERS)] = "gpio"
    model: Annotated[str, OneOf(available_pilot_models)] = "evse-wb-din"  # a map hal/pilots/<model>.toml
    port: str = ""
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    device_id: int = 2
    poll_interval_s: float = 0.5
    timeout_s: float = 0.3

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        problems = []
        if self.driver == "modbus-evse" and not self.port:
            problems.append(("port", "the modbus-evse pilot driver needs a port"))
        if not 1 <= self.device_id <= 247:
            problems.append(("device_id", "must be a Modbus address 1..247"))
        return problems


@dataclass(frozen=True)
class GpioPinsConfig:
    """[evse.gpio]: GPIO lines of one EVSE (BCM numbers, or gpiod line offsets/names)."""

    contactor: int | None = None
    contactor_active_high: bool = True
    contactor_feedback: int | None = None
    contactor_feedback_active_high: bool = True
    lock_type: Literal["none", "motor", "solenoid"] = "none"
    lock_a: int | None = None
    lock_b: int | None = None
    lock_pulse_ms: int = 300
    lock_active_high: bool = True
    lock_feedback: int | None = None
    lock_feedback_active_high: bool = True
    pilot_plug: int | None = None
    pilot_charge: int | None = None
    pilot_active_high: bool = True


@dataclass(frozen=True)
class EvseConfig:
    """[[evse]]: one EVSE (one connector by default)."""

    id: int
    max_current_A: float = 32.0
    phases: Literal[1, 3] = 3
    meter: MeterConfig = MeterConfig()
    pilot: PilotConfig = PilotConfig()
    gpio: GpioPinsConfig = GpioPinsConfig()

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        return _evse_problems(self)


@dataclass(frozen=True)
class RfidConfig:
    """[hal.rfid]: the RFID reader."""

    driver: Annotated[str, OneOf(RFID_DRIVERS)] = "mock"
    port: str = ""
    baudrate: int | None = None  # None: the reader's usual rate (9600; 115200 for pn532-uart)

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        if not needs_mock_backend(RFID_DRIVERS, self.driver) and not self.port:
            return [("port", f"the {self.driver} reader needs a port")]
        return []


@dataclass(frozen=True)
class ExternalLimitConfig:
    """[hal.external_limit] (optional): a contact that caps the current while it is active.

    A ripple-control receiver or an energy manager's relay (§14a EnWG,
    "EVU-Sperre"): while active, each EVSE (or only EVSE ``evse``) offers at
    most ``limit_A`` per phase; 0 blocks charging.
    """

    gpio: int | None = None  # the input line (raspberry-pi backend); the mock backend simulates it
    active_high: bool = True
    limit_A: float = 0.0
    source: Literal["EMS", "SO", "Other"] = "EMS"  # OCPP 2.0.1 chargingLimitSource
    grid_critical: bool = False  # OCPP 2.0.1 isGridCritical
    evse: int = 0  # 0: every EVSE of the station

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        return _external_limit_problems(self)


@dataclass(frozen=True)
class HalConfig:
    """[hal]: which hardware backend drives the charger."""

    backend: Annotated[str, OneOf(BACKENDS)] = "mock"
    gpio: Annotated[str, OneOf(GPIO_BACKENDS)] = "rpi-gpio"
    gpiod_chip: str = "/dev/gpiochip0"
    rfid: RfidConfig = RfidConfig()
    external_limit: ExternalLimitConfig | None = None
    # The driver-facing display: unset, the backend's own (the mock simulates one, a Raspberry Pi has
    # none); "console" logs its texts (a station without a screen); "none" fits none.
    display: Annotated[str, OneOf(DISPLAY_DRIVERS)] | None = None

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        if self.display == "none" and self.backend == "mock":
            return [("display", '"none" needs backend = "raspberry-pi": the mock always simulates a display '
                                '(leave it unset, or "console")')]
        return []


@dataclass(frozen=True)
class LoggingConfig:
    """[logging]: log levels (stderr; journald adds timestamps) and the OCPP message log bound."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    levels: dict[str, str] = field(default_factory=dict)
    message_log_max_MiB: float = 16.0

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        return _logging_problems(self)


@dataclass(frozen=True)
class SystemConfig:
    """[system]: how the agent acts on the board itself."""

    reboot_command: str = "systemctl reboot"
    watchdog_stale_s: float = 90.0
    # UpdateFirmware: run with the downloaded image's path appended (no shell). Empty: updates are refused
    # (reported InstallationFailed) rather than pretending to install.
    firmware_install_command: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ocpp16Config:
    """[ocpp16]: initial OCPP 1.6 configuration keys."""

    configuration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ocpp201Config:
    """[ocpp201]: initial OCPP 2.0.1 device-model variables ("Component.Variable")."""

    variables: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    """The whole, validated configuration."""

    station: StationConfig
    csms: CsmsConfig
    evse: tuple[EvseConfig, ...]
    hal: HalConfig = HalConfig()
    logging: LoggingConfig = LoggingConfig()
    system: SystemConfig = SystemConfig()
    ocpp16: Ocpp16Config = Ocpp16Config()
    ocpp201: Ocpp201Config = Ocpp201Config()
    web: WebConfig = WebConfig()
    source: str = ""

    @property
    def endpoint_url(self) -> str:
        """The URL the agent connects to: csms.url with the station id appended."""
        return self.csms.url.rstrip("/") + "/" + self.station.id

    @property
    def initial_settings(self) -> dict[str, Any]:
        """File-given OCPP settings by neutral setting name (values already coerced)."""
        values: dict[str, Any] = {"security_profile": self.csms.security_profile}
        for key, value in self.ocpp16.configuration.items():
            values[SETTINGS_BY_OCPP16[key].name] = coerce_setting(SETTINGS_BY_OCPP16[key], value)
        for key, value in self.ocpp201.variables.items():
            values[SETTINGS_BY_OCPP201[key].name] = coerce_setting(SETTINGS_BY_OCPP201[key], value)
        return values


# ------------------------------------------------ rules of one section each


def _station_problems(station: StationConfig) -> list[tuple[str, str]]:
    problems = []
    if not station.id or any(c in station.id for c in "/?#% ") or len(station.id) > 48:
        problems.append(("id", "must be 1-48 characters without '/', '?', '#', '%' or spaces"))
    if str(station.data_dir).startswith("~"):
        problems.append(("data_dir", "'~' is not expanded; give an absolute path"))
    return problems


def _csms_problems(csms: CsmsConfig) -> list[tuple[str, str]]:
    problems = []
    parts = urlsplit(csms.url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        problems.append(("url", f"expected a ws:// or wss:// URL, got {csms.url!r}"))
    elif csms.security_profile >= 2 and parts.scheme != "wss":
        problems.append(("url", f"security_profile {csms.security_profile} needs a wss:// URL"))
    elif csms.security_profile <= 1 and parts.scheme == "wss":
        problems.append(("security_profile", "a wss:// URL needs security_profile 2 or 3"))
    if csms.security_profile in (1, 2) and not csms.password:
        problems.append(("password", f"security_profile {csms.security_profile} needs a password"))
    if csms.security_profile == 3:
        for key in ("client_cert_file", "client_key_file"):
            if not getattr(csms, key):
                problems.append((key, "security_profile 3 needs a client certificate and key"))
    for key in ("ca_file", "client_cert_file", "client_key_file"):
        value = getattr(csms, key)
        if value and not os.path.isfile(value):
            problems.append((key, f"file not found: {value}"))
    for key in ("connect_timeout_s", "response_timeout_s", "ping_timeout_s"):
        if getattr(csms, key) <= 0:
            problems.append((key, "must be greater than 0"))
    return problems


def _evse_problems(evse: EvseConfig) -> list[tuple[str, str]]:
    problems = []
    if not 6.0 <= evse.max_current_A <= 80.0:
        problems.append(("max_current_A", "must be between 6 and 80 A (IEC 61851)"))
    return problems


def _external_limit_problems(limit: ExternalLimitConfig) -> list[tuple[str, str]]:
    problems = []
    if not math.isfinite(limit.limit_A) or limit.limit_A < 0:
        problems.append(("limit_A", "must be a number >= 0 (0 blocks charging)"))
    elif 0 < limit.limit_A < 6.0:
        # IEC 61851 PWM cannot offer less than 6 A: the pilot would suspend anyway, so say so here.
        problems.append(("limit_A", "the pilot cannot offer 0-6 A (IEC 61851): use 0 to block, or 6 or more"))
    if limit.evse < 0:
        problems.append(("evse", "must be an EVSE id, or 0 for every EVSE"))
    return problems


def _meter_problems(meter: MeterConfig) -> list[tuple[str, str]]:
    problems = []
    if not needs_mock_backend(METER_DRIVERS, meter.driver) and not meter.port:
        problems.append(("port", f"the {meter.driver} meter driver needs a port"))
    if not 1 <= meter.device_id <= 247:
        problems.append(("device_id", "must be a Modbus address 1..247"))
    return problems


_LEVELS = ("debug", "info", "warning", "error", "critical")


def _logging_problems(cfg: LoggingConfig) -> list[tuple[str, str]]:
    problems = []
    for name, level in cfg.levels.items():
        if not isinstance(level, str) or level.lower() not in _LEVELS:
            problems.append((f"levels.{name}", f"expected one of {', '.join(_LEVELS)}"))
    if cfg.message_log_max_MiB <= 0:
        problems.append(("message_log_max_MiB", "must be greater than 0"))
    return problems
