"""Modbus EVSE controller pilot (EVSE-WB / EVSE-DIN map): real RTU frames over a socat pty pair.

``EvseSim`` plays the controller inside a pymodbus RTU server: it accepts
writes to its holding registers, derives its PWM state from the set-point
like the firmware does, and lets the test move the vehicle state or reboot
it. ``LineSim`` serves controllers and meters on one line.
"""

import asyncio
import logging
import time

import pytest
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.drivers.modbus_meter import close_all_buses, open_bus, open_meter
from hal.drivers.modbus_pilot import PILOT_OFFLINE, ModbusPilot, open_pilot
from hal.errors import HalStartError, MeterReadError, MeterTimeout
from hal.events import FaultCleared, FaultRaised, PilotChanged, PilotState
from hal.faults import fault_spec
from hal.meters import RegisterMapError, load_register_map
from hal.pilots import (
    UnknownPilotModel, available_pilot_models, decode_status, load_pilot_map, parse_pilot_map,
    set_point_value,
)
from tests.hal.helpers import faults_of
from tests.hal.modbus_sim import MeterSim, PtyPair

BAUD = 115200  # ptys ignore it; fast keeps computed transmission times small
MODEL = "evse-wb-din"
EVSE_ID = 3     # the controller's device id on the line
# Raw vehicle states of the EVSE-WB/DIN (register 1002).
READY, PRESENT, CHARGING, VENTILATION, FAILURE = 1, 2, 3, 4, 5
FAST = {"poll_interval_s": 0.05, "timeout_s": 0.1, "retries": 1}


class EvseSim:
    """One EVSE-WB/DIN controller: registers 1000..1007 and 2000..2002, as a pymodbus SimDevice.

    Like the firmware, it generates PWM (1006 = 2, 1001 = set-point) only
    while the set-point (1000) is at least 6 A, else 1006 = 1 (steady 12 V).
    Observable: ``writes`` (monotonic time, address, values), ``reads``
    (FC3 requests served). Drivable: ``set_vehicle``, ``reboot``.
    """

    def __init__(self, device_id: int = EVSE_ID, *, default_A: int = 32) -> None:
        self.device_id = device_id
        self.registers = {1000: default_A, 1002: READY, 1003: 32, 1005: 18,
                          2000: default_A, 2001: device_id, 2002: 6}
        self.writes: list[tuple[float, int, list[int]]] = []
        self.reads = 0
        self.line: LineSim | None = None  # the server it sits on, set by the fixture
        self._derive()

    def set_vehicle(self, raw: int) -> None:
        """The EV moves the pilot: register 1002 shows ``raw`` from now on."""
        self.registers[1002] = raw

    def reboot(self) -> None:
        """Power cycle: the volatile set-point is back to the default after boot (2000)."""
        self.registers[1000] = self.registers[2000]
        self.registers[1004] = 0
        self._derive()

    @property
    def set_point(self) -> int:
        """Register 1000 now."""
        return self.registers[1000]

    @property
    def pwm(self) -> bool:
        """True while the controller generates PWM (1006 = 2)."""
        return self.registers[1006] == 2

    def device(self) -> SimDevice:
        """The SimDevice to put on a server."""
        holding = [SimData(1000, count=8, values=0, datatype=DataType.REGISTERS),
                   SimData(2000, count=3, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, values=False, datatype=DataType.BITS)]
        inputs = [SimData(0, values=0, datatype=DataType.REGISTERS)]
        return SimDevice(self.device_id, simdata=(bits, list(bits), holding, inputs), action=self._serve)

    def __repr__(self) -> str:
        return (f"<EvseSim id={self.device_id} set_point={self.set_point} vehicle={self.registers[1002]}"
                f" pwm={self.pwm} writes={len(self.writes)} reads={self.reads}>")

    def _derive(self) -> None:
        pwm = self.registers[1000] >= 6
        self.registers[1006] = 2 if pwm else 1
        self.registers[1001] = self.registers[1000] if pwm else 0

    async def _serve(self, function_code, start_address, address, count, registers, set_values):
        if set_values is not None:
            self.writes.append((time.monotonic(), address, list(set_values)))
            for i, value in enumerate(set_values):
                self.registers[address + i] = value
            self._derive()
        elif function_code == 3:
            self.reads += 1
        for i in range(address, address + count):
            registers[i - start_address] = self.registers.get(i, 0)
        return None


class LineSim(MeterSim):
    """A pymodbus RTU server playing EVSE controllers (and meters, as MeterSim does) on one port."""

    def __init__(self, port: str, *, evses: list[EvseSim], meters: dict | None = None) -> None:
        super().__init__(port, meters=meters or {}, baudrate=BAUD)
        self.evses = evses

    async def start(self) -> None:
        """Open the port and serve (a fresh server each time: the devices powering up)."""
        devices = [self._device(i, m) for i, m in self.meters.items()] + [e.device() for e in self.evses]
        self._server = ModbusSerialServer(devices, port=self.port, baudrate=self.baudrate,
                                          trace_packet=self._trace_packet)
        await self._server.serve_forever(background=True)


@pytest.fixture
async def pair(short_dir):
    pair = PtyPair(short_dir)
    await pair.start()
    yield pair
    await close_all_buses()
    await pair.stop()


@pytest.fixture
async def evse(pair):
    sim = EvseSim()
    line = LineSim(pair.meter_port, evses=[sim])
    await line.start()
    sim.line = line
    yield sim
    await line.stop()


@pytest.fixture
async def started(pair, evse, events):
    pilot = await pilot_on(pair, events)
    await pilot.start()
    yield pilot
    await pilot.stop()


async def pilot_on(pair, events, *, device_id=EVSE_ID, max_current_A=32.0, **options) -> ModbusPilot:
    """A pilot on the driver's end of ``pair``, with the fast test timings unless overridden."""
    return await open_pilot(1, emit=events.append, model=MODEL, port=pair.bus_port,
                            device_id=device_id, baudrate=BAUD, max_current_A=max_current_A,
                            **{**FAST, **options})


async def until(condition, *, timeout_s: float = 2.0) -> float:
    """Wait until ``condition()`` is true; returns the seconds it took (fails the test on timeout)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.002)
    return time.monotonic() - start


def pilot_states(events) -> list[PilotState]:
    return [e.state for e in events if isinstance(e, PilotChanged)]


# ------------------------------------------------------------ register map


def test_modbus_pilot_map_decodes_the_status_block():
    register_map = load_pilot_map(MODEL)
    assert available_pilot_models() == (MODEL,)
    status = decode_status(register_map, [16, 16, CHARGING, 32, 0, 18, 2])
    assert (status.set_point_raw, status.state, status.pwm_on, status.firmware) == (16, PilotState.C, True, 18)
    decoded = {raw: decode_status(register_map, [0, 0, raw, 0, 0, 0, 1]).state for raw in range(7)}
    assert decoded == {0: None, READY: PilotState.A, PRESENT: PilotState.B, CHARGING: PilotState.C,
                       VENTILATION: PilotState.D, FAILURE: PilotState.F, 6: None}
    with pytest.raises(RegisterMapError, match="7"):
        decode_status(register_map, [0] * 6)


def test_modbus_pilot_map_set_point_rounds_down_to_whole_amps():
    register_map = load_pilot_map(MODEL)
    assert [set_point_value(register_map, a) for a in (0, 6, 6.99, 16.7, 80)] == [0, 6, 6, 16, 80]
    for bad in (5.9, 81):
        with pytest.raises(ValueError, match="cannot offer"):
            set_point_value(register_map, bad)


def test_modbus_pilot_map_errors_are_listed_together_with_a_hint():
    with pytest.raises(UnknownPilotModel, match="did you mean 'evse-wb-din'"):
        load_pilot_map("evse-din")
    bad = {"model": "X", "min_gap_ms": 20, "min_current_A": 6, "max_current_A": 80,
           "current_step_A": 1, "status": {"start": 1000, "count": 3},
           "registers": {"set_point": 1000, "vehicle_state": 1005}, "vehicle_states": {"1": "Q"}}
    with pytest.raises(RegisterMapError) as caught:
        parse_pilot_map(bad)
    message = str(caught.value)
    for part in ("model 'X'", "registers.vehicle_state", "vehicle_states"):
        assert part in message


def test_modbus_pilot_offline_fault_stops_charging():
    assert fault_spec(PILOT_OFFLINE).stops_charging is True


# ------------------------------------------------------------ bus writes


async def test_modbus_bus_write_registers_fc6_and_fc16(pair, evse):
    bus = await open_bus(pair.bus_port, baudrate=BAUD)
    await bus.write_registers(device_id=EVSE_ID, address=1000, values=[16], gap_s=0.0,
                              timeout_s=0.1, retries=0)
    await bus.write_registers(device_id=EVSE_ID, address=2000, values=[10, EVSE_ID], gap_s=0.0,
                              timeout_s=0.1, retries=0)
    assert [w[1:] for w in evse.writes] == [(1000, [16]), (2000, [10, EVSE_ID])]
    assert evse.set_point == 16 and evse.registers[2000] == 10
    with pytest.raises(ValueError):
        await bus.write_registers(device_id=EVSE_ID, address=1000, values=[0x10000], gap_s=0.0,
                                  timeout_s=0.1, retries=0)


async def test_modbus_bus_write_errors(pair, evse):
    bus = await open_bus(pair.bus_port, baudrate=BAUD)
    with pytest.raises(MeterReadError, match="exception response 2"):  # outside every block
        await bus.write_registers(device_id=EVSE_ID, address=3000, values=[1], gap_s=0.0,
                                  timeout_s=0.1, retries=1)
    assert bus.requests == 1  # an exception response is an answer: not retried
    await evse.line.stop()
    with pytest.raises(MeterTimeout, match="FC6 0x03E8"):
        await bus.write_registers(device_id=EVSE_ID, address=1000, values=[1], gap_s=0.0,
                                  timeout_s=0.05, retries=1)
    assert bus.requests == 3


# ------------------------------------------------------------ driver


async def test_modbus_pilot_start_writes_0A_first_then_reports_the_state(pair, evse, events):
    evse.set_vehicle(PRESENT)
    pilot = await pilot_on(pair, events)
    assert evse.writes == [] and evse.reads == 0  # building opens nothing
    await pilot.start()
    try:
        assert evse.writes[0][1:] == (1000, [0]) and evse.reads == 1  # the write came first
        assert evse.set_point == 0 and not evse.pwm
        assert pilot.state == PilotState.B and pilot.current_limit_A == 0
        assert pilot_states(events) == [PilotState.B] and faults_of(events) == []
        assert "online" in repr(pilot) and "set_point=0" in repr(pilot)
    finally:
        await pilot.stop()


async def test_modbus_pilot_vehicle_states_become_events(started, evse, events):
    sequence = [PRESENT, CHARGING, PRESENT, READY]
    for raw in sequence:
        evse.set_vehicle(raw)
        await until(lambda: started.state == load_pilot_map(MODEL).vehicle_states[raw])
    assert pilot_states(events) == [PilotState.B, PilotState.C, PilotState.B, PilotState.A]
    assert all(e.evse_id == 1 for e in events if isinstance(e, PilotChanged))
    for raw, state in ((VENTILATION, PilotState.D), (FAILURE, PilotState.F), (42, PilotState.F)):
        evse.set_vehicle(raw)
        await until(lambda: started.state == state)
    assert faults_of(events) == []


async def test_modbus_pilot_limit_reaches_the_register_within_100ms(pair, evse, events):
    # A slow poll proves the write does not wait for it.
    pilot = await pilot_on(pair, events, poll_interval_s=0.5)
    await pilot.start()
    try:
        await asyncio.sleep(0.05)
        for amps, register in ((16, 16), (10.8, 10), (32, 32)):
            before = len(evse.writes)
            took_s = time.monotonic()
            assert pilot.set_current_limit_A(amps) == register
            await until(lambda: evse.set_point == register, timeout_s=1.0)
            took_s = time.monotonic() - took_s
            assert took_s < 0.1, f"{amps} A took {took_s * 1000:.0f} ms"
            assert [w[1:] for w in evse.writes[before:]] == [(1000, [register])]
        assert evse.pwm and pilot.current_limit_A == 32
    finally:
        await pilot.stop()


async def test_modbus_pilot_zero_suspends_by_writing_0A(started, evse, events):
    started.set_current_limit_A(16)
    await until(lambda: evse.pwm and started.pwm_on is True)
    assert started.set_current_limit_A(0) == 0
    await until(lambda: evse.set_point == 0)
    assert not evse.pwm  # 0 A: the controller stops the PWM (steady 12 V)
    await until(lambda: started.pwm_on is False)
    started.set_current_limit_A(16)
    await until(lambda: evse.set_point == 16)
    # Below the IEC minimum the base class suspends rather than round up.
    assert started.set_current_limit_A(4.5) == 0
    await until(lambda: evse.set_point == 0)
    assert evse.writes[-1][1:] == (1000, [0])


async def test_modbus_pilot_limit_above_max_is_clamped(pair, evse, events):
    pilot = await pilot_on(pair, events, max_current_A=20.5)
    await pilot.start()
    try:
        assert pilot.set_current_limit_A(63) == 20  # clamped to 20.5, then whole amps
        await until(lambda: evse.set_point == 20)
        assert pilot.current_limit_A == 20
    finally:
        await pilot.stop()
    with pytest.raises(ValueError, match="exceeds what evse-wb-din can offer"):
        await pilot_on(pair, events, device_id=4, max_current_A=100)


async def test_modbus_pilot_silent_controller_is_F_with_fault_then_recovers(started, evse, events):
    evse.set_vehicle(CHARGING)
    started.set_current_limit_A(16)
    await until(lambda: started.state == PilotState.C and evse.set_point == 16)
    await evse.line.stop()  # the controller loses power
    await until(lambda: started.offline)
    assert started.state == PilotState.F
    raised = [e for e in events if isinstance(e, FaultRaised)]
    assert [(e.evse_id, e.code, e.stops_charging) for e in raised] == [(1, PILOT_OFFLINE, True)]
    assert "offline" in repr(started) and f"device {EVSE_ID} on " in raised[0].info
    await evse.line.start()
    await until(lambda: not started.offline)
    assert started.state == PilotState.C
    assert faults_of(events)[-1] == ("cleared", 1, PILOT_OFFLINE)
    assert pilot_states(events)[-2:] == [PilotState.F, PilotState.C]
    assert isinstance(events[-1], PilotChanged)  # cleared before the real state is reported
    assert isinstance(events[-2], FaultCleared)


async def test_modbus_pilot_silent_at_start_is_offline_at_once(pair, events):
    sim = EvseSim(default_A=32)
    line = LineSim(pair.meter_port, evses=[sim])
    pilot = await pilot_on(pair, events)
    await pilot.start()  # no controller yet: start does not fail
    try:
        assert pilot.offline and pilot.state == PilotState.F
        await line.start()
        await until(lambda: not pilot.offline)
        assert sim.writes[0][1:] == (1000, [0]) and sim.set_point == 0  # the default 32 A is gone
        assert pilot.state == PilotState.A
    finally:
        await pilot.stop()
        await line.stop()


async def test_modbus_pilot_reapplies_the_limit_after_a_controller_reboot(started, evse, events, caplog):
    started.set_current_limit_A(16)
    await until(lambda: evse.set_point == 16)
    await asyncio.sleep(0.1)  # a few polls read 16 back: nothing to re-apply
    assert started.reapplied == 0
    with caplog.at_level(logging.WARNING, logger="hal.drivers.modbus_pilot"):
        evse.reboot()
        assert evse.set_point == 32
        took_s = await until(lambda: evse.set_point == 16)
    assert took_s < 3 * FAST["poll_interval_s"] + 0.1
    assert started.reapplied == 1 and "reads 32, not 16" in caplog.text
    assert faults_of(events) == []


async def test_modbus_pilot_and_meter_share_one_line(pair, events):
    sim = EvseSim(device_id=EVSE_ID)
    line = LineSim(pair.meter_port, evses=[sim], meters={1: load_register_map("sdm630")})
    await line.start()
    meter = await open_meter(1, emit=events.append, model="sdm630", port=pair.bus_port,
                             device_id=1, baudrate=BAUD, timeout_s=0.1)
    pilot = await pilot_on(pair, events)
    try:
        assert pilot.bus is meter.bus and pilot.bus.device_ids == (1, EVSE_ID)
        with pytest.raises(HalStartError, match="device id 1 .* already used by EVSE 1 meter"):
            await pilot_on(pair, events, device_id=1)
        await pilot.start()
        sim.set_vehicle(CHARGING)
        pilot.set_current_limit_A(13)
        readings = [await meter.read() for _ in range(5)]
        await until(lambda: pilot.state == PilotState.C and sim.set_point == 13)
        assert all(r.power_W == pytest.approx(7200.0) for r in readings)
        assert faults_of(events) == [] and pilot.bus.failed_requests == 0
        assert {r[1] for r in line.requests} == {1} and sim.reads > 1
    finally:
        await pilot.stop()
        await meter.stop()
        await line.stop()


async def test_modbus_pilot_stop_writes_0A_stops_polling_and_releases(started, evse):
    started.set_current_limit_A(16)
    await until(lambda: evse.set_point == 16)
    bus = started.bus
    await started.stop()
    assert evse.set_point == 0 and not evse.pwm
    reads = evse.reads
    await asyncio.sleep(4 * FAST["poll_interval_s"])
    assert evse.reads == reads and bus.device_ids == ()
