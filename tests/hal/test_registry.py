"""The registry builds the configured drivers, never the mock by accident, and releases what it opened."""

import asyncio

import pytest
import serial

from agent.config import parse_config
from hal.drivers.gpio_devices import GpioContactor, GpioLock, GpioPilot
from hal.drivers.modbus_meter import ModbusMeter
from hal.drivers.serial_rfid import SerialTokenReader
from hal.events import PilotState, TokenPresented
from hal.gpio.fake import FakeGpioBackend
from hal.meters import load_register_map
from hal.mock.hardware import MockHal
from hal.registry import build_hal
from hal.rfid.rdm6300 import encode_frame
from tests.hal.modbus_sim import MeterSim, PtyPair

PINS = {"contactor": 17, "contactor_feedback": 27, "lock_type": "solenoid", "lock_a": 22,
        "lock_feedback": 24, "pilot_plug": 5, "pilot_charge": 6}


def pi_config(tmp_path, meter_port, reader_port):
    return parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
        "csms": {"url": "ws://127.0.0.1:9/ocpp"},
        "evse": [{"id": 1, "gpio": PINS, "meter": {"driver": "modbus", "model": "sdm630", "port": meter_port,
                                                    "baudrate": 115200, "timeout_s": 0.1}}],
        "hal": {"backend": "raspberry-pi", "gpio": "gpiod",
                "rfid": {"driver": "rdm6300", "port": reader_port}},
    })


@pytest.fixture
async def pair(short_dir):
    meter_dir = short_dir / "m"
    meter_dir.mkdir()
    pair = PtyPair(meter_dir)
    await pair.start()
    yield pair
    await pair.stop()


@pytest.fixture
async def reader_pair(short_dir):
    reader_dir = short_dir / "r"
    reader_dir.mkdir()
    pair = PtyPair(reader_dir)
    await pair.start()
    yield pair
    await pair.stop()


async def test_registry_raspberry_pi_builds_real_drivers_end_to_end(tmp_path, pair, reader_pair, monkeypatch):
    gpio = FakeGpioBackend()
    gpio.wire(17, 27)  # a healthy contactor: the mirror contact follows the coil
    gpio.wire(22, 24)  # a solenoid lock with its position switch
    opened = []
    monkeypatch.setattr("hal.gpio.open_backend", lambda name, **options: opened.append((name, options)) or gpio)
    sim = MeterSim(pair.meter_port, meters={1: load_register_map("sdm630")})
    sim.set_reading(1, energy_Wh=4321.0)
    await sim.start()
    events = []
    hal = await build_hal(pi_config(tmp_path, pair.bus_port, reader_pair.bus_port), emit=events.append)
    try:
        assert opened == [("gpiod", {"chip": "/dev/gpiochip0"})]
        hw = hal.evse(1)
        assert isinstance(hw.contactor, GpioContactor) and isinstance(hw.lock, GpioLock)
        assert isinstance(hw.pilot, GpioPilot) and isinstance(hw.meter, ModbusMeter)
        assert isinstance(hal.token_reader, SerialTokenReader)
        await hal.start()
        hw.contactor.allow_power(True)
        assert await hw.contactor.close() and hw.contactor.feedback_closed
        assert (await hw.meter.read()).energy_import_Wh == pytest.approx(4321.0, abs=0.1)
        gpio.set_input(5, True)
        await asyncio.sleep(0.1)
        assert hw.pilot.state is PilotState.B
        with serial.Serial(reader_pair.meter_port) as device:  # the reader's far end
            device.write(encode_frame("0A00C0FFEE"))
        for _ in range(100):
            if any(isinstance(e, TokenPresented) for e in events):
                break
            await asyncio.sleep(0.02)
        assert TokenPresented("0A00C0FFEE", None) in events
    finally:
        await hal.close()
        await sim.stop()
    assert gpio.values(17)[-1] is False  # contactor coil released last
    assert gpio.closed


async def test_registry_mock_backend_with_a_real_meter(tmp_path, pair):
    sim = MeterSim(pair.meter_port, meters={3: load_register_map("sdm120")})
    await sim.start()
    config = parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
        "csms": {"url": "ws://127.0.0.1:9/ocpp"},
        "evse": [{"id": 1, "meter": {"driver": "modbus", "model": "sdm120", "port": pair.bus_port,
                                     "baudrate": 115200, "device_id": 3}}, {"id": 2}],
    })
    hal = await build_hal(config, emit=lambda e: None)
    try:
        assert isinstance(hal, MockHal)
        assert isinstance(hal.evse(1).meter, ModbusMeter)
        assert not isinstance(hal.evse(2).meter, ModbusMeter)
        await hal.start()
        assert len((await hal.evse(1).meter.read()).voltage_V) == 1
    finally:
        await hal.close()
        await sim.stop()


async def test_registry_missing_gpio_library_is_an_error_not_a_mock(tmp_path):
    config = pi_config(tmp_path, "/dev/null", "/dev/null")
    with pytest.raises(Exception, match="gpiod"):
        await build_hal(config, emit=lambda e: None)
