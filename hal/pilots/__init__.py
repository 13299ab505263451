"""Register maps of Modbus EVSE controllers (one TOML file per model), decoded by pure functions.

An EVSE controller generates the control pilot PWM itself; the agent reads
the vehicle state from it and writes the current set-point to it.
``load_pilot_map("evse-wb-din")`` gives a validated ``PilotRegisterMap``;
``decode_status`` turns the registers of one poll into a ``PilotStatus`` and
``set_point_value`` turns amperes into the set-point register's value.
Nothing here does I/O or imports pymodbus: ``hal.drivers.modbus_pilot`` does.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

from hal.datafiles import build_checked, check_model_name, model_names, read_model_file
from hal.errors import HalError
from hal.events import PilotState
from hal.meters import Block, RegisterMapError

_MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_TOP_KEYS = {"model", "maker", "min_gap_ms", "min_current_A", "max_current_A", "current_step_A",
             "suspend_value", "status", "registers", "vehicle_states", "pwm_evse_states"}
_REGISTER_KEYS = {"set_point", "vehicle_state", "evse_state", "firmware"}
# A register map may leave these out; the driver then does without them.
_OPTIONAL_REGISTERS = {"evse_state", "firmware"}

__all__ = [
    "PilotRegisterMap",
    "PilotStatus",
    "RegisterMapError",
    "UnknownPilotModel",
    "available_pilot_models",
    "decode_status",
    "load_pilot_map",
    "parse_pilot_map",
    "set_point_value",
]


class UnknownPilotModel(HalError, LookupError):
    """No register map exists for the configured EVSE controller model."""


@dataclass(frozen=True, slots=True)
class PilotRegisterMap:
    """A validated register map of one EVSE controller model (see ``load_pilot_map``).

    ``status`` is the one holding-register block read per poll; every
    address below lies inside it. ``vehicle_states`` maps the raw vehicle
    state to a pilot state; ``suspend_value`` is what the set-point register
    gets to stop the PWM.
    """

    model: str
    maker: str
    min_gap_s: float
    min_current_A: float
    max_current_A: float
    current_step_A: float
    suspend_value: int
    status: Block
    set_point: int
    vehicle_state: int
    evse_state: int | None
    firmware: int | None
    vehicle_states: Mapping[int, PilotState]
    pwm_evse_states: frozenset[int]

    def __repr__(self) -> str:
        return (f"<PilotRegisterMap {self.model} status={self.status.start}+{self.status.count}"
                f" {self.min_current_A:g}..{self.max_current_A:g}A step={self.current_step_A:g}A>")


@dataclass(frozen=True, slots=True)
class PilotStatus:
    """One poll of an EVSE controller, decoded.

    ``state`` is None when the controller reports a vehicle state the map
    does not know; ``pwm_on`` is None when the map has no EVSE state register.
    """

    set_point_raw: int
    vehicle_raw: int
    state: PilotState | None
    pwm_on: bool | None
    firmware: int | None


# Where the register maps live: one ``<model>.toml`` per model. A module attribute, read at each
# look-up, so a test can point it at a directory of its own.
MAPS_DIR = resources.files(__package__)


def available_pilot_models() -> tuple[str, ...]:
    """The EVSE controller models that have a register map in ``MAPS_DIR``, sorted: the files are the list."""
    return model_names(MAPS_DIR)


@functools.lru_cache(maxsize=None)
def load_pilot_map(model: str) -> PilotRegisterMap:
    """Load and validate the map of ``model``; UnknownPilotModel names the valid ones."""
    data = read_model_file(MAPS_DIR, model, available_pilot_models(), what="EVSE controller model",
                           unknown=UnknownPilotModel, malformed=RegisterMapError)
    return check_model_name(parse_pilot_map(data, source=f"{model}.toml"), model, malformed=RegisterMapError)


def parse_pilot_map(data: Mapping, *, source: str = "pilot register map") -> PilotRegisterMap:
    """Validate a map given as parsed TOML; RegisterMapError lists every problem found."""
    return build_checked(data, _build, source=source, malformed=RegisterMapError)


def _build(data: Mapping, problems: list[str]) -> PilotRegisterMap | None:
    unknown = set(data) - _TOP_KEYS
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    model = data["model"]
    if not isinstance(model, str) or not _MODEL_NAME.match(model):
        problems.append(f"model {model!r} must be lower-case letters, digits and '-'")
    currents = {key: _number(data, key, 0.0, 1000.0, problems)
                for key in ("min_current_A", "max_current_A", "current_step_A")}
    if currents["current_step_A"] <= 0 or currents["min_current_A"] > currents["max_current_A"]:
        problems.append("need current_step_A > 0 and min_current_A <= max_current_A")
    gap_ms = _number(data, "min_gap_ms", 0.0, 1000.0, problems)
    status = _status_block(data["status"], problems)
    registers = _registers(data["registers"], status, problems)
    suspend = data.get("suspend_value", 0)
    if not _is_u16(suspend):
        problems.append(f"suspend_value {suspend!r} must be a register value 0..65535")
    states = _vehicle_states(data["vehicle_states"], problems)
    pwm = data.get("pwm_evse_states", [])
    if not isinstance(pwm, list) or not all(_is_u16(v) for v in pwm):
        problems.append(f"pwm_evse_states {pwm!r} must be a list of register values")
        pwm = []
    if problems:
        return None
    return PilotRegisterMap(model=model, maker=str(data.get("maker", "")), min_gap_s=gap_ms / 1000.0,
                            **currents, suspend_value=suspend, status=status, **registers,
                            vehicle_states=MappingProxyType(states), pwm_evse_states=frozenset(pwm))


def _is_u16(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= 0xFFFF


def _number(data: Mapping, key: str, low: float, high: float, problems: list[str]) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or not low <= value <= high:
        problems.append(f"{key} {value!r} must be a number from {low:g} to {high:g}")
        return 1.0
    return float(value)


def _status_block(raw: Mapping, problems: list[str]) -> Block:
    unknown = set(raw) - {"start", "count"}
    if unknown:
        problems.append(f"status: unknown keys {sorted(unknown)}")
    # Holding registers (FC3): the set-point is read back from the same block it is written to.
    block = Block(function_code=3, start=raw["start"], count=raw["count"])
    if not isinstance(block.count, int) or isinstance(block.count, bool) or not 1 <= block.count <= 125:
        problems.append(f"status: count {block.count!r} must be 1..125")
    elif not _is_u16(block.start) or block.end > 0x10000:
        problems.append(f"status: start {block.start!r} must be a register address 0..0xFFFF")
    return block


def _registers(raw: Mapping, status: Block, problems: list[str]) -> dict[str, int | None]:
    unknown = set(raw) - _REGISTER_KEYS
    if unknown:
        problems.append(f"registers: unknown keys {sorted(unknown)}")
    found: dict[str, int | None] = {}
    for key in sorted(_REGISTER_KEYS):
        address = raw.get(key)
        if address is None and key in _OPTIONAL_REGISTERS:
            found[key] = None
        elif not _is_u16(address) or not isinstance(status.start, int) \
                or not isinstance(status.count, int) or not status.start <= address < status.end:
            problems.append(f"registers.{key}: {address!r} must be an address inside the status block")
        else:
            found[key] = address
    return found


def _vehicle_states(raw: Mapping, problems: list[str]) -> dict[int, PilotState]:
    states: dict[int, PilotState] = {}
    for key, letter in raw.items():
        try:
            states[int(key)] = PilotState(letter)
        except ValueError:
            problems.append(f"vehicle_states: {key!r} = {letter!r} must map a number to a state A-F")
    if not states:
        problems.append("vehicle_states: at least one value is needed")
    return states


def decode_status(register_map: PilotRegisterMap, registers: Sequence[int]) -> PilotStatus:
    """Decode the status block of one poll (pure: no I/O); RegisterMapError if it is short."""
    status = register_map.status
    if len(registers) != status.count:
        raise RegisterMapError(f"{register_map.model}: status block has {len(registers)} registers,"
                               f" not {status.count}")

    def at(address: int | None) -> int | None:
        return None if address is None else registers[address - status.start]

    vehicle = at(register_map.vehicle_state)
    evse = at(register_map.evse_state)
    return PilotStatus(
        set_point_raw=at(register_map.set_point),
        vehicle_raw=vehicle,
        state=register_map.vehicle_states.get(vehicle),
        pwm_on=None if evse is None else evse in register_map.pwm_evse_states,
        firmware=at(register_map.firmware),
    )


def set_point_value(register_map: PilotRegisterMap, amps: float) -> int:
    """The set-point register value offering ``amps`` (0 = suspend), rounded DOWN to the model's step.

    Down, because offering more than the limit could overload the supply
    the limit protects. ValueError for a value the model cannot offer.
    """
    if amps == 0:
        return register_map.suspend_value
    steps = math.floor(amps / register_map.current_step_A + 1e-9)
    offered = steps * register_map.current_step_A
    if not register_map.min_current_A - 1e-9 <= offered <= register_map.max_current_A + 1e-9:
        raise ValueError(f"{register_map.model} cannot offer {amps!r} A "
                         f"({register_map.min_current_A:g}..{register_map.max_current_A:g} A or 0)")
    return steps
