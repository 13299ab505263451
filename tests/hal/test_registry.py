"""The registry builds the configured drivers, never the mock by accident, and releases what it opened."""

import asyncio
import sys
import types
from types import SimpleNamespace

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
from hal import registry
from hal.registry import UnknownDriver, build_hal, build_meter, build_token_reader
from hal.rfid import DEFAULT_BAUDRATES, PROTOCOLS
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


# -- one table per kind of device: the registry builds from it, importing only the chosen module ------------


TABLES = {"meter": registry.METER_DRIVERS, "pilot": registry.PILOT_DRIVERS, "rfid": registry.RFID_DRIVERS,
          "display": registry.DISPLAY_DRIVERS}


@pytest.mark.parametrize("kind", TABLES)
def test_registry_every_table_entry_names_a_factory_that_exists(kind):
    for name, ref in TABLES[kind].items():
        if ref is None:  # display "none": no device at all
            continue
        assert callable(ref.load()), name
        assert ref.closer is None or callable(ref.load_closer()), name


def test_registry_rfid_table_has_one_serial_driver_per_parser_protocol():
    assert list(registry.RFID_DRIVERS) == ["mock", *PROTOCOLS]
    for protocol in PROTOCOLS:
        assert registry.RFID_DRIVERS[protocol].options == {"protocol": protocol}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_registry_builds_each_rfid_reader_from_the_table(protocol):
    rfid = SimpleNamespace(driver=protocol, port="loop://", baudrate=None)
    reader = build_token_reader(rfid, lambda event: None)
    assert isinstance(reader, SerialTokenReader)
    assert (reader.protocol, reader.port, reader.baudrate) == (protocol, "loop://", DEFAULT_BAUDRATES[protocol])


class FakeDriverModule(types.ModuleType):
    """A driver module made up by a test: records what the registry asked it to build."""

    def __init__(self, name: str):
        super().__init__(name)
        self.built, self.closed = [], []

    async def open_meter(self, evse_id, **options):
        self.built.append((evse_id, options))
        return SimpleNamespace(evse_id=evse_id)

    def close(self):
        self.closed.append(True)

    def Reader(self, **options):  # noqa: N802 - stands for a driver class
        self.built.append(options)
        return SimpleNamespace(**options)


@pytest.fixture
def fake_driver(monkeypatch):
    module = FakeDriverModule("fake_driver_for_tests")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


async def test_registry_builds_a_meter_from_whatever_the_table_names(fake_driver, monkeypatch):
    monkeypatch.setitem(registry.METER_DRIVERS, "acme", registry.DriverRef(
        "fake_driver_for_tests:open_meter", options={"flavour": "x"}, closer="fake_driver_for_tests:close"))
    meter = SimpleNamespace(driver="acme", model="sdm630", port="/dev/x", device_id=4, baudrate=9600,
                            timeout_s=0.3, parity="N", stopbits=1, poll_interval_s=2.5)
    built, closer = await build_meter(SimpleNamespace(id=2, meter=meter), emit=print)
    assert built.evse_id == 2
    assert fake_driver.built == [(2, {"emit": print, "model": "sdm630", "port": "/dev/x", "device_id": 4,
                                      "baudrate": 9600, "timeout_s": 0.3, "parity": "N", "stopbits": 1,
                                      "poll_interval_s": 2.5, "flavour": "x"})]
    closer()
    assert fake_driver.closed == [True]


def test_registry_builds_a_reader_from_whatever_the_table_names(fake_driver, monkeypatch):
    monkeypatch.setitem(registry.RFID_DRIVERS, "acme", registry.DriverRef("fake_driver_for_tests:Reader"))
    reader = build_token_reader(SimpleNamespace(driver="acme", port="/dev/y", baudrate=None), print)
    assert reader == SimpleNamespace(emit=print, port="/dev/y", baudrate=None)


async def test_registry_refuses_unknown_and_mock_only_names_listing_the_table():
    with pytest.raises(UnknownDriver, match=r"hal.rfid.driver 'acme' is unknown; valid: mock, rdm6300, "):
        build_token_reader(SimpleNamespace(driver="acme", port="/dev/y", baudrate=None), print)
    with pytest.raises(UnknownDriver, match=r"'mock' needs hal.backend = 'mock'; valid with real hardware: rdm6300, "):
        build_token_reader(SimpleNamespace(driver="mock", port="", baudrate=None), print)
    with pytest.raises(UnknownDriver, match=r"evse 1: meter driver 'mock' needs .*real hardware: modbus$"):
        await build_meter(SimpleNamespace(id=1, meter=SimpleNamespace(driver="mock")), emit=print)
    with pytest.raises(UnknownDriver, match=r"hal.backend 'pc' is unknown; valid: mock, raspberry-pi$"):
        await build_hal(SimpleNamespace(hal=SimpleNamespace(backend="pc")), emit=print)
