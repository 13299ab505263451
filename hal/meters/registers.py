"""Meter register maps (one TOML file per model) and the one pure function that decodes them.

A map says which registers to read in bulk (``blocks``) and where each
quantity of a ``MeterReading`` lives in them: address, data type, resolution
and unit as the maker's table gives them, plus the word/byte order of the
model. ``decode`` turns the raw 16-bit registers of one poll into a reading;
it does no I/O, so every map is testable with hand-made register lists.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from hal.datafiles import build_checked, check_model_name, model_names, read_model_file
from hal.errors import HalError, MeterReadError
from hal.events import MeterReading

# struct code and register count of each supported data type.
DATA_TYPES: dict[str, tuple[str, int]] = {
    "int16": ("h", 1), "uint16": ("H", 1),
    "int32": ("i", 2), "uint32": ("I", 2),
    "int64": ("q", 4), "uint64": ("Q", 4),
    "float32": ("f", 2), "float64": ("d", 4),
}
# Units a maker may state for each quantity, and the factor to ours.
UNITS: dict[str, dict[str, float]] = {
    "energy_import_Wh": {"Wh": 1.0, "kWh": 1000.0},
    "power_W": {"W": 1.0, "kW": 1000.0},
    "voltage_V": {"V": 1.0},
    "current_A": {"A": 1.0, "mA": 0.001},
}
ORDERS = ("big", "little")
FUNCTION_CODES = {3: "holding", 4: "input"}
_MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
_TOP_KEYS = {"model", "maker", "phases", "byte_order", "word_order",
             "max_registers_per_read", "min_gap_ms", "blocks", "fields"}


class UnknownMeterModel(HalError, LookupError):
    """No register map exists for the configured meter model."""


class RegisterMapError(HalError, ValueError):
    """A register map file is malformed or inconsistent."""


@dataclass(frozen=True, slots=True)
class Block:
    """One bulk read per poll: ``count`` registers from ``start`` with ``function_code`` (3 or 4)."""

    function_code: int
    start: int
    count: int

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.start + self.count


@dataclass(frozen=True, slots=True)
class Field:
    """Where one quantity lives: ``address`` inside the block that starts at ``block``.

    The decoded value is ``raw * multiplier / divisor``: a resolution like
    0.1 V becomes divisor 10, so 2301 reads as exactly 230.1 rather than
    230.10000000000002.
    """

    address: int
    data_type: str
    block: int
    multiplier: float = 1.0
    divisor: float = 1.0

    @property
    def size(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return DATA_TYPES[self.data_type][1]


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """A validated register map of one meter model (see ``load_register_map``)."""

    model: str
    maker: str
    phases: int
    byte_order: str
    word_order: str
    max_registers_per_read: int
    min_gap_s: float
    blocks: tuple[Block, ...]
    energy_import_Wh: Field
    power_W: Field
    voltage_V: tuple[Field, ...]
    current_A: tuple[Field, ...]

    def __repr__(self) -> str:
        return (f"<RegisterMap {self.model} phases={self.phases} blocks={len(self.blocks)}"
                f" words={self.word_order}>")


# Where the register maps live: one ``<model>.toml`` per model. A module attribute, read at each
# look-up, so a test can point it at a directory of its own.
MAPS_DIR = resources.files(__package__)


def available_models() -> tuple[str, ...]:
    """The meter models that have a register map in ``MAPS_DIR``, sorted: the files are the list."""
    return model_names(MAPS_DIR)


@functools.lru_cache(maxsize=None)
def load_register_map(model: str) -> RegisterMap:
    """Load and validate the map of ``model``; UnknownMeterModel names the valid ones.

    Maps are immutable, so each is parsed once per process.
    """
    data = read_model_file(MAPS_DIR, model, available_models(), what="meter model",
                           unknown=UnknownMeterModel, malformed=RegisterMapError)
    return check_model_name(parse_register_map(data, source=f"{model}.toml"), model, malformed=RegisterMapError)


def parse_register_map(data: Mapping, *, source: str = "register map") -> RegisterMap:
    """Validate a map given as parsed TOML; RegisterMapError lists every problem found."""
    return build_checked(data, _build, source=source, malformed=RegisterMapError)


def _build(data: Mapping, problems: list[str]) -> RegisterMap | None:
    unknown = set(data) - _TOP_KEYS
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    model = data["model"]
    if not isinstance(model, str) or not _MODEL_NAME.match(model):
        problems.append(f"model {model!r} must be lower-case letters, digits and '-'")
    phases = _int_in(data, "phases", 1, 3, problems)
    limit = _int_in(data, "max_registers_per_read", 1, 125, problems)
    orders = {key: _choice(data, key, ORDERS, problems) for key in ("byte_order", "word_order")}
    gap_ms = data.get("min_gap_ms", 0)
    if isinstance(gap_ms, bool) or not isinstance(gap_ms, (int, float)) or not 0 <= gap_ms <= 1000:
        problems.append(f"min_gap_ms {gap_ms!r} must be a number from 0 to 1000")
    blocks = tuple(_block(i, raw, limit, problems) for i, raw in enumerate(data["blocks"]))
    _check_blocks(blocks, problems)
    fields = data["fields"]
    if set(fields) != set(UNITS):
        problems.append(f"fields must be exactly {sorted(UNITS)}, not {sorted(fields)}")
    scalar = {name: _field(name, fields[name], blocks, problems) for name in ("energy_import_Wh", "power_W")}
    phased = {name: _phase_fields(name, fields[name], phases, blocks, problems)
              for name in ("voltage_V", "current_A")}
    if problems:
        return None
    return RegisterMap(model=model, maker=str(data.get("maker", "")), phases=phases,
                       max_registers_per_read=limit, min_gap_s=gap_ms / 1000.0,
                       blocks=blocks, **orders, **scalar, **phased)


def _int_in(data: Mapping, key: str, low: int, high: int, problems: list[str]) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{key} {value!r} must be an integer from {low} to {high}")
    return value


def _choice(data: Mapping, key: str, choices: Sequence[str], problems: list[str]) -> str:
    value = data[key]
    if value not in choices:
        problems.append(f"{key} {value!r} must be one of {', '.join(choices)}")
    return value


def _block(index: int, raw: Mapping, limit: int, problems: list[str]) -> Block:
    block = Block(function_code=raw["function_code"], start=raw["start"], count=raw["count"])
    where = f"blocks[{index}]"
    if block.function_code not in FUNCTION_CODES:
        problems.append(f"{where}: function_code {block.function_code!r} must be 3 (holding) or 4 (input)")
    if not isinstance(block.count, int) or not 1 <= block.count <= (limit if isinstance(limit, int) else 125):
        problems.append(f"{where}: count {block.count!r} must be 1..max_registers_per_read ({limit})")
    elif not isinstance(block.start, int) or not 0 <= block.start <= 0x10000 - block.count:
        problems.append(f"{where}: start {block.start!r} must be a register address 0..0xFFFF")
    return block


def _check_blocks(blocks: tuple[Block, ...], problems: list[str]) -> None:
    if not blocks:
        problems.append("at least one block is needed")
    starts = [block.start for block in blocks]
    if len(set(starts)) != len(starts):
        # decode() receives the registers keyed by block start.
        problems.append("two blocks start at the same address")


def _phase_fields(name: str, raw: Mapping, phases: int, blocks, problems: list[str]) -> tuple[Field, ...]:
    addresses = raw.get("addresses")
    if not isinstance(addresses, list) or len(addresses) != phases:
        problems.append(f"fields.{name}: needs 'addresses', one per phase ({phases})")
        return ()
    common = {key: value for key, value in raw.items() if key != "addresses"}
    return tuple(_field(f"{name}[{i}]", {**common, "address": address}, blocks, problems, unit_of=name)
                 for i, address in enumerate(addresses))


def _field(name: str, raw: Mapping, blocks, problems: list[str], *, unit_of: str | None = None) -> Field:
    quantity = unit_of or name
    data_type, unit = raw.get("type"), raw.get("unit")
    address, resolution = raw.get("address"), raw.get("resolution", 1)
    unknown = set(raw) - {"type", "unit", "address", "resolution"}
    if unknown:
        problems.append(f"fields.{name}: unknown keys {sorted(unknown)}")
    if data_type not in DATA_TYPES:
        problems.append(f"fields.{name}: type {data_type!r} must be one of {', '.join(DATA_TYPES)}")
        data_type = "uint16"
    if unit not in UNITS[quantity]:
        problems.append(f"fields.{name}: unit {unit!r} must be one of {', '.join(UNITS[quantity])}")
        unit = next(iter(UNITS[quantity]))
    if isinstance(resolution, bool) or not isinstance(resolution, (int, float)) \
            or not math.isfinite(resolution) or resolution <= 0:
        problems.append(f"fields.{name}: resolution {resolution!r} must be a number > 0")
        resolution = 1
    size = DATA_TYPES[data_type][1]
    home = _containing_block(address, size, blocks)
    if home is None:
        problems.append(f"fields.{name}: registers {address!r}+{size} are not inside one block")
    multiplier, divisor = _scale(resolution * UNITS[quantity][unit])
    return Field(address=address, data_type=data_type, block=home.start if home else -1,
                 multiplier=multiplier, divisor=divisor)


def _containing_block(address, size: int, blocks) -> Block | None:
    if isinstance(address, bool) or not isinstance(address, int):
        return None
    return next((b for b in blocks if isinstance(b.start, int) and isinstance(b.count, int)
                 and b.start <= address and address + size <= b.end), None)


def _scale(factor: float) -> tuple[float, float]:
    """(multiplier, divisor) for ``factor``, dividing when it is 1/n so decimals come out exact."""
    inverse = 1.0 / factor
    if factor < 1 and abs(inverse - round(inverse)) < 1e-9 * inverse:
        return 1.0, float(round(inverse))
    return factor, 1.0


def decode(register_map: RegisterMap, blocks: Mapping[int, Sequence[int]], *,
           timestamp: float) -> MeterReading:
    """Decode the raw registers of one poll into a MeterReading (pure: no I/O, no clock).

    ``blocks`` maps each block's start address to the 16-bit values read
    there. A missing or short block, or a value outside 0..0xFFFF, raises
    MeterReadError. Values are not judged here (NaN, implausible scale):
    ``EnergyMeter.read`` does that for every driver alike.
    """
    def value(field: Field) -> float:
        return _decode_field(register_map, blocks, field)

    return MeterReading(
        energy_import_Wh=value(register_map.energy_import_Wh),
        power_W=value(register_map.power_W),
        voltage_V=tuple(value(field) for field in register_map.voltage_V),
        current_A=tuple(value(field) for field in register_map.current_A),
        timestamp=timestamp,
    )


def _decode_field(register_map: RegisterMap, blocks: Mapping[int, Sequence[int]], field: Field) -> float:
    registers = blocks.get(field.block)
    code, size = DATA_TYPES[field.data_type]
    offset = field.address - field.block
    words = None if registers is None else registers[offset:offset + size]
    if words is None or len(words) != size:
        raise MeterReadError(f"{register_map.model}: no registers for 0x{field.address:04X}"
                             f" (block 0x{field.block:04X} missing or short)")
    if register_map.word_order == "little":
        words = words[::-1]
    # "<H" per word swaps the two bytes of each register, for byte_order "little".
    word_format = ">" if register_map.byte_order == "big" else "<"
    try:
        raw = struct.pack(f"{word_format}{size}H", *words)
    except struct.error as exc:
        raise MeterReadError(f"{register_map.model}: register value out of 0..0xFFFF"
                             f" at 0x{field.address:04X}: {list(words)}") from exc
    (number,) = struct.unpack(">" + code, raw)
    if code == "f":
        # float32 holds about 7 significant digits: 230.1 V arrives as
        # 230.10000610351562. Rounding keeps what the meter meant and is
        # monotonic, so a rising energy register never reads lower.
        number = float(f"{number:.7g}")
    return number * field.multiplier / field.divisor
