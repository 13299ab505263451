"""Configuration: a TOML file parsed into frozen dataclasses before anything is opened.

The schema *is* the dataclasses below: field names are TOML keys, annotations are
the expected types and defaults make keys optional. ``load_config`` walks the
TOML tables against them and collects every problem with its key path, so an
operator fixes a broken file in one go instead of one error per restart.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.errors import ConfigError
from agent.runtime.settings import SETTINGS_BY_OCPP16, SETTINGS_BY_OCPP201, coerce_setting

DEFAULT_CONFIG_PATH = "/etc/ocpp-agent/agent.toml"


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a config file, located by its dotted key path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


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
    ocpp_version: Literal["1.6", "2.0.1"] = "1.6"
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

    driver: Literal["mock", "modbus"] = "mock"
    model: Literal["sdm630", "sdm120", "sdm72d-m", "abb-b23", "em24"] = "sdm630"
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

    driver: Literal["gpio", "modbus-evse"] = "gpio"
    model: Literal["evse-wb-din"] = "evse-wb-din"
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

    driver: Literal["mock", "rdm6300", "ascii-line", "pn532-uart"] = "mock"
    port: str = ""
    baudrate: int | None = None  # None: the reader's usual rate (9600; 115200 for pn532-uart)

    def problems(self) -> list[tuple[str, str]]:
        """Cross-key rules of this section, as (key, message) pairs."""
        if self.driver != "mock" and not self.port:
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

    backend: Literal["mock", "raspberry-pi"] = "mock"
    gpio: Literal["rpi-gpio", "gpiod"] = "rpi-gpio"
    gpiod_chip: str = "/dev/gpiochip0"
    rfid: RfidConfig = RfidConfig()
    external_limit: ExternalLimitConfig | None = None
    # The driver-facing display: unset, the backend's own (the mock simulates one, a Raspberry Pi has
    # none); "console" logs its texts (a station without a screen); "none" fits none.
    display: Literal["none", "console"] | None = None

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


# ------------------------------------------------------------------ loading


def load_config(path: str | os.PathLike) -> AgentConfig:
    """Read and validate a config file; raise ConfigError listing every problem."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", f"config file not found: {path}")]) from None
    except PermissionError:
        raise ConfigError([ConfigProblem("", f"config file not readable: {path}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"{path}: not valid TOML: {exc}")]) from None
    return parse_config(raw, source=str(path))


def parse_config(raw: dict, *, source: str = "") -> AgentConfig:
    """Validate an already-parsed TOML document; raise ConfigError listing every problem."""
    problems: list[ConfigProblem] = []
    values = _build_values(AgentConfig, raw, "", problems, skip={"source"})
    problems.extend(_check_top_level(values))
    if problems:
        raise ConfigError(problems)
    return AgentConfig(**values, source=source)


def _build_values(cls, table: Any, path: str, problems: list[ConfigProblem], *, skip=()) -> dict:
    """Convert the keys of ``table`` that fit ``cls``'s fields; append a problem for each that does not."""
    if not isinstance(table, dict):
        problems.append(ConfigProblem(path, f"expected a table, got {_kind(table)}"))
        return {}
    hints = typing.get_type_hints(cls)
    known = [f.name for f in fields(cls) if f.name not in skip]
    for key in table:
        if key not in known:
            problems.append(ConfigProblem(_join(path, key), "unknown key" + _did_you_mean(key, known)))
    values = {}
    for name in known:
        key_path = _join(path, name)
        if name not in table:
            if _is_required(cls, name):
                problems.append(ConfigProblem(key_path, "required key is missing"))
            continue
        before = len(problems)
        value = _convert(hints[name], table[name], key_path, problems)
        if len(problems) == before:
            values[name] = value
    return values


def _is_required(cls, name: str) -> bool:
    f = cls.__dataclass_fields__[name]
    return f.default is MISSING and f.default_factory is MISSING


def _build(cls, table: Any, path: str, problems: list[ConfigProblem]):
    """Build dataclass ``cls`` from ``table`` and run its own checks; None if a required key failed.

    Keys that failed keep their defaults, so the object's cross-key checks still
    run and the operator sees those problems in the same report.
    """
    values = _build_values(cls, table, path, problems)
    if any(_is_required(cls, f.name) and f.name not in values for f in fields(cls)):
        return None
    instance = cls(**values)
    check = getattr(instance, "problems", None)
    if check is not None:
        problems.extend(ConfigProblem(_join(path, key), message) for key, message in check())
    return instance


def _convert(hint, value: Any, path: str, problems: list[ConfigProblem]):
    """Check ``value`` against annotation ``hint``; convert where TOML needs it."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        # "int | None": None is only a default, TOML has no null; check the other type.
        inner = [a for a in typing.get_args(hint) if a is not type(None)][0]
        return _convert(inner, value, path, problems)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return value
        shown = ", ".join(repr(a) for a in allowed)
        problems.append(ConfigProblem(path, f"expected one of {shown}, got {value!r}"))
        return None
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, list):
            problems.append(ConfigProblem(path, f"expected an array, got {_kind(value)}"))
            return None
        items = (_convert(item_type, item, f"{path}[{i}]", problems) for i, item in enumerate(value))
        return tuple(item for item in items if item is not None)
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(ConfigProblem(path, f"expected a table, got {_kind(value)}"))
            return None
        return dict(value)
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return _build(hint, value, path, problems)
    return _convert_scalar(hint, value, path, problems)


def _convert_scalar(hint, value: Any, path: str, problems: list[ConfigProblem]):
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint in (str, int, bool) and type(value) is hint:
        return value
    expected = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Path: "a path string"}
    problems.append(ConfigProblem(path, f"expected {expected.get(hint, hint)}, got {_kind(value)} {value!r}"))
    return None


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _did_you_mean(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in candidates}
        if key.lower() in lowered:
            close = [lowered[key.lower()]]
    return f' (did you mean "{close[0]}"?)' if close else ""


# ---------------------------------------------------------- cross-field rules


def _check_top_level(values: dict) -> list[ConfigProblem]:
    """Rules that span sections: EVSE numbering and the OCPP setting tables."""
    problems = []
    evses = values.get("evse")
    if evses is not None:
        ids = [e.id for e in evses]
        if not ids:
            problems.append(ConfigProblem("evse", "at least one [[evse]] table is required"))
        elif sorted(ids) != list(range(1, len(ids) + 1)):
            problems.append(ConfigProblem("evse", f"EVSE ids must be 1..{len(ids)} without gaps or repeats, got {ids}"))
    hal = values.get("hal", HalConfig())
    if evses and hal.backend == "raspberry-pi":
        problems.extend(_gpio_problems(evses))
        problems.extend(_mock_on_real_hardware(evses, hal))
    if evses and hal.external_limit is not None:
        problems.extend(_external_limit_placement(hal, evses))
    tables = (
        ("ocpp16.configuration", values.get("ocpp16"), "configuration", SETTINGS_BY_OCPP16),
        ("ocpp201.variables", values.get("ocpp201"), "variables", SETTINGS_BY_OCPP201),
    )
    for prefix, section, attribute, known in tables:
        if section is not None:
            problems.extend(_check_ocpp_table(prefix, getattr(section, attribute), known))
    csms, ocpp201 = values.get("csms"), values.get("ocpp201")
    if csms is not None and csms.ocpp_version == "1.6" and ocpp201 is not None:
        for key in ocpp201.variables:
            if key in SETTINGS_BY_OCPP201 and SETTINGS_BY_OCPP201[key].name in _ONLY_201_BEHAVIOUR:
                problems.append(ConfigProblem(f'ocpp201.variables."{key}"',
                                              "changes what a transaction is, which OCPP 1.6 cannot express; "
                                              "remove it or set csms.ocpp_version = \"2.0.1\""))
    return problems


# 2.0.1 settings whose behaviour 1.6 messages cannot carry (a transaction without an idTag, ...).
_ONLY_201_BEHAVIOUR = frozenset({"tx_start_point", "tx_stop_point", "master_pass_group_id"})


def _gpio_problems(evses) -> list[ConfigProblem]:
    """Pin assignments the GPIO drivers would refuse, reported at load time with their key paths."""
    from hal.drivers.gpio_devices import gpio_pin_problems

    return [
        ConfigProblem(f"evse[{i}].gpio.{key}", message)
        for i, evse in enumerate(evses)
        for key, message in gpio_pin_problems(evse.gpio, pilot_on_gpio=evse.pilot.driver == "gpio")
    ]


def _mock_on_real_hardware(evses, hal: HalConfig) -> list[ConfigProblem]:
    """Mock devices only exist inside the mock backend; never mock a device silently on a real charger."""
    hint = "'mock' needs hal.backend = \"mock\"; name the real driver"
    problems = [ConfigProblem(f"evse[{i}].meter.driver", f"{hint} (e.g. \"modbus\")")
                for i, evse in enumerate(evses) if evse.meter.driver == "mock"]
    if hal.rfid.driver == "mock":
        problems.append(ConfigProblem("hal.rfid.driver", f"{hint} (e.g. \"rdm6300\")"))
    return problems


def _external_limit_placement(hal: HalConfig, evses) -> list[ConfigProblem]:
    """The limit's EVSE must exist, and on real hardware its input needs a line of its own."""
    problems = []
    limit = hal.external_limit
    if limit.evse and limit.evse not in {e.id for e in evses}:
        problems.append(ConfigProblem("hal.external_limit.evse", f"no [[evse]] with id {limit.evse} "
                                      "(0 applies the limit to every EVSE)"))
    if hal.backend == "raspberry-pi":
        from hal.drivers.gpio_limit_input import limit_input_problems

        problems += [ConfigProblem(f"hal.external_limit.{key}", message)
                     for key, message in limit_input_problems(limit, evses)]
    return problems


# Connection settings the csms section owns; the OCPP names exist for the CSMS to change them.
_CSMS_SECTION_SETTINGS = {"security_profile": "security_profile", "basic_auth_password": "password"}


def _check_ocpp_table(prefix: str, given: dict, known: dict) -> list[ConfigProblem]:
    problems = []
    for key, value in given.items():
        path = f'{prefix}."{key}"' if "." in key else f"{prefix}.{key}"
        if key not in known:
            problems.append(ConfigProblem(path, "unknown setting" + _did_you_mean(key, list(known))))
            continue
        if known[key].name in _CSMS_SECTION_SETTINGS:
            problems.append(ConfigProblem(path, f"set csms.{_CSMS_SECTION_SETTINGS[known[key].name]} instead"))
            continue
        try:
            coerce_setting(known[key], value)
        except ValueError as exc:
            problems.append(ConfigProblem(path, str(exc)))
    return problems


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
    if meter.driver == "modbus" and not meter.port:
        problems.append(("port", "the modbus meter driver needs a port"))
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
