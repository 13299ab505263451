"""Register maps (data files) and the pure decoder, with hand-made register lists: no I/O."""

import math
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.errors import HalError, MeterReadError
from hal.events import MeterReading
from hal.meters import (
    RegisterMapError, UnknownMeterModel, available_models, decode, load_register_map,
    parse_register_map,
)
from hal.roles import EnergyMeter
from tests.hal.helpers import faults_of
from tests.hal.modbus_sim import encode_reading

MODELS = ("abb-b23", "em24", "sdm120", "sdm630", "sdm72d-m")
T = 1_700_000_000.0


def f32(value: float) -> list[int]:
    """A float32 as two registers, high word first (Eastron)."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return [high, low]


def sdm630_block(*, volts=(230.0, 231.0, 232.0), amps=(10.0, 11.0, 12.0), power=7200.0,
                 energy_kWh=12345.5) -> list[int]:
    """The 80 input registers of an SDM630 showing these values."""
    registers = [0] * 80
    for i, value in enumerate((*volts, *amps)):
        registers[2 * i:2 * i + 2] = f32(value)
    registers[0x34:0x36] = f32(power)
    registers[0x48:0x4A] = f32(energy_kWh)
    return registers


def minimal_map(**overrides) -> dict:
    """A valid one-phase map as parsed TOML, for the validation tests."""
    data = {
        "model": "test-1p", "maker": "Test", "phases": 1, "byte_order": "big", "word_order": "big",
        "max_registers_per_read": 10, "min_gap_ms": 5,
        "blocks": [{"function_code": 4, "start": 0, "count": 8}],
        "fields": {
            "voltage_V": {"type": "uint16", "unit": "V", "resolution": 0.1, "addresses": [0]},
            "current_A": {"type": "uint16", "unit": "mA", "addresses": [1]},
            "power_W": {"type": "int32", "unit": "W", "address": 2},
            "energy_import_Wh": {"type": "uint32", "unit": "Wh", "address": 4},
        },
    }
    data.update(overrides)
    return data


class DecodedMeter(EnergyMeter):
    """A meter whose driver hook decodes fixed registers: the base class judges the result."""

    def __init__(self, register_map, blocks, **options):
        super().__init__(1, **options)
        self.register_map, self.blocks = register_map, blocks

    async def _read(self):
        return decode(self.register_map, self.blocks, timestamp=time.time())


def test_meter_registers_every_model_has_a_valid_map():
    assert available_models() == MODELS
    for model in MODELS:
        register_map = load_register_map(model)
        assert register_map.model == model
        assert register_map.phases == (1 if model == "sdm120" else 3)
        assert len(register_map.voltage_V) == len(register_map.current_A) == register_map.phases
        assert all(b.count <= register_map.max_registers_per_read for b in register_map.blocks)
        assert register_map.min_gap_s > 0
    assert load_register_map("sdm630") is load_register_map("sdm630")  # parsed once


def test_meter_registers_bulk_reads_per_poll():
    blocks = {model: [(b.function_code, b.start, b.count) for b in load_register_map(model).blocks]
              for model in MODELS}
    assert blocks["sdm630"] == [(4, 0x0000, 80)]             # one read covers 0x0000..0x004F
    assert blocks["sdm120"] == [(4, 0x0000, 76)]
    assert blocks["sdm72d-m"] == [(4, 0x0000, 12), (4, 0x0034, 22)]  # 30-parameter limit
    assert blocks["abb-b23"] == [(3, 0x5000, 4), (3, 0x5B00, 22)]    # holding registers
    assert all(count <= 11 for _, _, count in blocks["em24"])        # EM24: 11 words per request


def test_meter_registers_unknown_model_lists_the_valid_ones():
    with pytest.raises(UnknownMeterModel) as caught:
        load_register_map("sdm630m")
    assert isinstance(caught.value, HalError) and isinstance(caught.value, LookupError)
    message = str(caught.value)
    assert "did you mean 'sdm630'" in message
    assert all(model in message for model in MODELS)
    with pytest.raises(UnknownMeterModel):
        load_register_map("../meters/sdm630")  # a name, never a path


def test_meter_registers_sdm630_float32_high_word_first():
    register_map = load_register_map("sdm630")
    # 230.0 V is 0x43660000: high word 0x4366 comes first.
    registers = sdm630_block(volts=(230.0, 230.5, 231.0), power=-1500.0)
    assert registers[0:2] == [0x4366, 0x0000]
    reading = decode(register_map, {0x0000: registers}, timestamp=T)
    assert reading == MeterReading(12_345_500.0, -1500.0, (230.0, 230.5, 231.0),
                                   (10.0, 11.0, 12.0), T)


def test_meter_registers_float32_rounded_to_its_precision():
    register_map = load_register_map("sdm630")
    reading = decode(register_map, {0: sdm630_block(volts=(230.1, 229.8, 231.4), energy_kWh=12345.67)},
                     timestamp=T)
    assert reading.voltage_V == (230.1, 229.8, 231.4)  # not 230.10000610351562
    assert reading.energy_import_Wh == 12_345_670.0


def test_meter_registers_sdm120_one_phase():
    register_map = load_register_map("sdm120")
    registers = [0] * 76
    registers[0x00:0x02], registers[0x06:0x08] = f32(229.5), f32(31.25)
    registers[0x0C:0x0E], registers[0x48:0x4A] = f32(7172.0), f32(2.5)
    reading = decode(register_map, {0: registers}, timestamp=T)
    assert (reading.voltage_V, reading.current_A) == ((229.5,), (31.25,))
    assert (reading.power_W, reading.energy_import_Wh) == (7172.0, 2500.0)


def test_meter_registers_em24_int32_low_word_first_and_scaled():
    register_map = load_register_map("em24")
    blocks = {
        0x0000: [2301, 0, 2298, 0, 2314, 0],          # V*10, LSW first
        0x000C: [10430, 0, 0x0001, 0x0001, 0, 0],     # A*1000: 10.43 A, 65.537 A, 0 A
        0x0028: [0xE6C0, 0xFFFE],                     # W*10 = -72000 (int32 0xFFFEE6C0)
        0x0034: [0xD687, 0x0012],                     # kWh*10 = 1234567 (0x0012D687)
    }
    reading = decode(register_map, blocks, timestamp=T)
    assert reading.voltage_V == (230.1, 229.8, 231.4)
    assert reading.current_A == (10.43, 65.537, 0.0)
    assert reading.power_W == -7200.0
    assert reading.energy_import_Wh == pytest.approx(123_456_700.0)


def test_meter_registers_abb_b23_scaled_integers():
    register_map = load_register_map("abb-b23")
    block = [0] * 22
    block[0:6] = [0, 2301, 0, 2298, 0, 2314]          # uint32, 0.1 V
    block[12:18] = [0, 1043, 0, 1044, 0, 1038]        # uint32, 0.01 A
    block[20:22] = [0xFFF5, 0x0380]                   # int32, 0.01 W: -720000 (0xFFF50380) -> -7200 W
    energy = [0, 0, 0x0012, 0xD687]                   # uint64, 0.01 kWh: 1234567 -> 12345.67 kWh
    reading = decode(register_map, {0x5000: energy, 0x5B00: block}, timestamp=T)
    assert reading.voltage_V == (230.1, 229.8, 231.4)
    assert reading.current_A == (10.43, 10.44, 10.38)
    assert reading.power_W == -7200.0
    assert reading.energy_import_Wh == 12_345_670.0


def test_meter_registers_byte_order_little_swaps_bytes_in_each_register():
    register_map = parse_register_map(minimal_map(byte_order="little"))
    # 2301 = 0x08FD arrives as 0xFD08 when a meter sends the low byte first.
    registers = [0xFD08, 0x3416, 0x0000, 0x201C, 0x0000, 0x1027, 0, 0]
    reading = decode(register_map, {0: registers}, timestamp=T)
    assert reading.voltage_V == (230.1,)
    assert reading.current_A == (5.684,)       # 0x1634 mA
    assert reading.power_W == 7200.0           # 0x00001C20
    assert reading.energy_import_Wh == 10000.0  # 0x00002710


def test_meter_registers_missing_short_or_oversized_registers_raise():
    register_map = load_register_map("abb-b23")
    good = {0x5000: [0, 0, 0, 1], 0x5B00: [0] * 22}
    assert decode(register_map, good, timestamp=T).energy_import_Wh == 10.0
    for blocks in ({0x5B00: [0] * 22},                      # energy block missing
                   {0x5000: [0, 0, 0, 1], 0x5B00: [0] * 21},  # power register cut off
                   {0x5000: [0, 0, 0, 0x10000], 0x5B00: [0] * 22}):
        with pytest.raises(MeterReadError):
            decode(register_map, blocks, timestamp=T)


async def test_meter_registers_nan_is_rejected_by_the_base_class(events):
    register_map = load_register_map("sdm630")
    registers = sdm630_block()
    registers[0x34:0x36] = [0x7FC0, 0x0000]  # float32 NaN in total power
    assert math.isnan(decode(register_map, {0: registers}, timestamp=T).power_W)
    meter = DecodedMeter(register_map, {0: registers}, emit=events.append, offline_after=2)
    for _ in range(2):
        with pytest.raises(MeterReadError, match="non-finite"):
            await meter.read()
    assert faults_of(events) == [("raised", 1, "meter-offline")]


async def test_meter_registers_wrong_scale_is_rejected_by_the_base_class(events):
    # The same EM24 registers read with resolution 1 instead of 0.1 give 2301 V.
    data = minimal_map(fields={**minimal_map()["fields"],
                               "voltage_V": {"type": "uint16", "unit": "V", "addresses": [0]}})
    meter = DecodedMeter(parse_register_map(data), {0: [2301, 0, 0, 0, 0, 0, 0, 0]}, emit=events.append)
    with pytest.raises(MeterReadError, match="implausible voltage"):
        await meter.read()


def test_meter_registers_invalid_map_lists_every_problem():
    fields = minimal_map()["fields"]
    data = minimal_map(
        phases=2, word_order="middle",
        blocks=[{"function_code": 5, "start": 0, "count": 8}, {"function_code": 4, "start": 0, "count": 12}],
        fields={**fields, "power_W": {"type": "int24", "unit": "W", "address": 2},
                "energy_import_Wh": {"type": "uint32", "unit": "MWh", "address": 20}},
    )
    with pytest.raises(RegisterMapError) as caught:
        parse_register_map(data, source="bad.toml")
    message = str(caught.value)
    for expected in ("bad.toml", "word_order", "function_code 5", "count 12",
                     "same address", "one per phase", "int24", "MWh", "not inside one block"):
        assert expected in message


def test_meter_registers_invalid_map_missing_or_unknown_keys():
    data = minimal_map()
    del data["phases"]
    with pytest.raises(RegisterMapError, match="missing key 'phases'"):
        parse_register_map(data)
    with pytest.raises(RegisterMapError, match="unknown keys"):
        parse_register_map(minimal_map(endianness="big"))


@settings(max_examples=60, deadline=None)
@given(model=st.sampled_from(MODELS),
       energy_kWh=st.floats(0, 999_999), power_W=st.floats(-50_000, 50_000),
       volts=st.lists(st.floats(0, 300), min_size=3, max_size=3),
       amps=st.lists(st.floats(0, 80), min_size=3, max_size=3))
def test_meter_registers_decode_inverts_the_makers_encoding(model, energy_kWh, power_W, volts, amps):
    register_map = load_register_map(model)
    phases = register_map.phases
    image = encode_reading(register_map, energy_Wh=energy_kWh * 1000, power_W=power_W,
                           voltage_V=volts[:phases], current_A=amps[:phases])
    blocks = {b.start: [image[b.function_code].get(a, 0) for a in range(b.start, b.end)]
              for b in register_map.blocks}
    reading = decode(register_map, blocks, timestamp=T)

    def close(got, want, field):
        step = field.multiplier / field.divisor  # one count of the register
        assert got == pytest.approx(want, rel=1e-6, abs=step / 2 + 1e-9)

    close(reading.energy_import_Wh, energy_kWh * 1000, register_map.energy_import_Wh)
    close(reading.power_W, power_W, register_map.power_W)
    for got, want, field in zip(reading.voltage_V, volts, register_map.voltage_V):
        close(got, want, field)
    for got, want, field in zip(reading.current_A, amps, register_map.current_A):
        close(got, want, field)
