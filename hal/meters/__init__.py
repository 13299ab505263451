"""Energy meter register maps: one TOML data file per model, decoded by one pure function.

``load_register_map("sdm630")`` gives a validated ``RegisterMap``;
``decode(register_map, blocks, timestamp=...)`` turns the raw registers of
one poll into a ``MeterReading``. Nothing here does I/O or imports pymodbus:
the Modbus driver (``hal.drivers.modbus_meter``) does the reading.
"""

from hal.meters.registers import (
    Block,
    Field,
    RegisterMap,
    RegisterMapError,
    UnknownMeterModel,
    available_models,
    decode,
    load_register_map,
    parse_register_map,
)

__all__ = [
    "Block",
    "Field",
    "RegisterMap",
    "RegisterMapError",
    "UnknownMeterModel",
    "available_models",
    "decode",
    "load_register_map",
    "parse_register_map",
]
