"""Modbus RTU meter driver against a pymodbus RTU server, real frames over a socat pty pair."""

import asyncio
import random
import statistics
import subprocess
import sys
import time

import pytest
from pymodbus.constants import ExcCodes

from hal.drivers.modbus_meter import ModbusBus, close_all_buses, open_bus, open_meter
from hal.errors import EnergyWentBackwards, HalStartError, MeterReadError, MeterTimeout
from hal.meters import load_register_map
from tests.hal.helpers import faults_of
from tests.hal.modbus_sim import MeterSim, PtyPair, reading_for

# ptys ignore the baud rate; a fast one keeps the computed transmission times small.
BAUD = 115200
FAST = {"timeout_s": 0.1, "retries": 1}
MODELS = ("sdm630", "sdm120", "sdm72d-m", "abb-b23", "em24")


@pytest.fixture
async def pair(short_dir):
    pair = PtyPair(short_dir)
    await pair.start()
    yield pair
    await close_all_buses()
    await pair.stop()


@pytest.fixture
async def serve(pair):
    sims = []

    async def start(meters: dict) -> MeterSim:
        sim = MeterSim(pair.meter_port, meters={i: load_register_map(m) for i, m in meters.items()})
        await sim.start()
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        await sim.stop()


async def meter_on(pair, events, model="sdm630", *, device_id=1, evse_id=1, **options):
    """A meter on the driver's end of ``pair``, with the fast test timeouts unless overridden."""
    options = {**FAST, **options}
    return await open_meter(evse_id, emit=events.append, model=model, port=pair.bus_port,
                            device_id=device_id, baudrate=BAUD, **options)


def assert_shows(reading, model, **values):
    """``reading`` carries the real-world values the simulated meter was given (within resolution)."""
    want = reading_for(load_register_map(model), **values)
    assert reading.energy_import_Wh == pytest.approx(want["energy_Wh"], abs=50)  # EM24: 0.1 kWh steps
    assert reading.power_W == pytest.approx(want["power_W"], abs=0.05)
    assert reading.voltage_V == pytest.approx(want["voltage_V"], abs=0.05)
    assert reading.current_A == pytest.approx(want["current_A"], abs=0.005)


class Ticker:
    """Another task on the loop, ticking every 50 ms: its longest gap shows whether the loop was blocked."""

    def __init__(self):
        self.max_gap = 0.0
        self._task = asyncio.create_task(self._run())

    async def _run(self):
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(0.05)
            now = loop.time()
            self.max_gap, last = max(self.max_gap, now - last), now

    async def stop(self) -> float:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.max_gap


@pytest.mark.parametrize("model", MODELS)
async def test_modbus_meter_decodes_each_model(pair, serve, events, model):
    sim = await serve({7: model})
    meter = await meter_on(pair, events, model, device_id=7)
    assert_shows(await meter.read(), model)
    sim.set_reading(7, energy_Wh=12_400_000.0, power_W=3680.0)
    assert_shows(await meter.read(), model, energy_Wh=12_400_000.0, power_W=3680.0)
    blocks = load_register_map(model).blocks
    assert [r[2:] for r in sim.requests] == [(b.function_code, b.start, b.count) for b in blocks] * 2
    assert events == []


async def test_modbus_meter_two_meters_share_one_bus_polled_in_turn(pair, serve, events):
    sim = await serve({1: "sdm630", 2: "abb-b23"})
    sim.set_reading(2, energy_Wh=500_000.0, power_W=-300.0, voltage_V=(228.0, 229.0, 230.0))
    first = await meter_on(pair, events, "sdm630", device_id=1, evse_id=1)
    second = await meter_on(pair, events, "abb-b23", device_id=2, evse_id=2)
    assert first.bus is second.bus and second.bus.device_ids == (1, 2)
    for _ in range(3):
        one, two = await asyncio.gather(first.read(), second.read())
        assert_shows(one, "sdm630")
        assert_shows(two, "abb-b23", energy_Wh=500_000.0, power_W=-300.0, voltage_V=(228.0, 229.0, 230.0))
    ids = [r[1] for r in sim.requests]
    assert ids == [1, 2, 2] * 3  # one meter's blocks are never interleaved with the other's
    arrivals = [r[0] for r in sim.requests]
    gap = load_register_map("sdm630").min_gap_s
    assert min(b - a for a, b in zip(arrivals, arrivals[1:])) >= gap * 0.9


async def test_modbus_meter_same_line_rules(pair, events):
    await meter_on(pair, events, device_id=1)
    with pytest.raises(HalStartError, match="device id 1 .* already used by EVSE 1"):
        await meter_on(pair, events, device_id=1, evse_id=2)
    with pytest.raises(HalStartError, match="same baudrate"):
        await open_bus(pair.bus_port, baudrate=9600)
    with pytest.raises(ValueError, match="device_id"):
        await meter_on(pair, events, device_id=248)


async def test_modbus_meter_no_meter_raises_offline_fault_within_bound(pair, events):
    # Production defaults (timeout 0.3 s, 1 retry); nobody listens on the far pty.
    meter = await open_meter(1, emit=events.append, model="sdm630", port=pair.bus_port,
                             device_id=1, baudrate=BAUD)
    ticker = Ticker()
    loop = asyncio.get_running_loop()
    started = loop.time()
    for attempt in range(3):
        assert faults_of(events) == []
        with pytest.raises(MeterTimeout):
            await meter.read()
    elapsed = loop.time() - started
    assert faults_of(events) == [("raised", 1, "meter-offline")]
    assert meter.last_reading is None and meter.offline
    assert elapsed <= 3 * meter.worst_case_s + 0.2, (elapsed, meter.worst_case_s)
    assert await ticker.stop() < 0.15  # the loop kept running while the meter did not answer


async def test_modbus_meter_garbage_on_the_line_fails_cleanly_and_recovers(pair, serve, events):
    sim = await serve({1: "sdm630"})
    meter = await meter_on(pair, events, timeout_s=0.05)
    rng = random.Random(20240611)
    for _ in range(5):  # garbage before one answer: the retry gets a clean one
        sim.garbage_before_answer = [rng.randbytes(rng.randint(1, 40))]
        assert_shows(await meter.read(), "sdm630")
    for _ in range(4):  # garbage before both answers: a clean failure, or a frame found behind it
        sim.garbage_before_answer = [rng.randbytes(rng.randint(1, 40)) for _ in range(2)]
        try:
            assert_shows(await meter.read(), "sdm630")
        except MeterReadError:
            pass
    for _ in range(3):  # noise on an idle line is dropped when the next request goes out
        pair.write_noise(rng.randbytes(64))
        await asyncio.sleep(0.01)
        assert_shows(await meter.read(), "sdm630")
    assert meter.consecutive_failures == 0 and not meter.offline


async def test_modbus_meter_late_answer_never_taken_for_the_next_block(pair, serve, events):
    # EM24: four blocks, two pairs of the same size; RTU answers carry no
    # address. The meter answers its first request after 90 ms (timeout 50 ms),
    # so the retry takes that answer, and the retry's own answer (60 ms) comes
    # while the next block is being asked for. Without the driver's quiet hold
    # the voltage registers were decoded as currents (2.301 A instead of 10.43 A).
    sim = await serve({1: "em24"})
    meter = await meter_on(pair, events, "em24", timeout_s=0.05, retries=1)
    sim.delays = [0.09, 0.06, 0.06]
    for _ in range(3):
        assert_shows(await meter.read(), "em24")
    assert meter.bus.failed_requests >= 1  # the first request did time out


async def test_modbus_meter_energy_going_backwards_is_refused(pair, serve, events):
    sim = await serve({1: "sdm630"})
    meter = await meter_on(pair, events)
    await meter.read()
    sim.set_reading(1, energy_Wh=12_000_000.0)
    with pytest.raises(EnergyWentBackwards):
        await meter.read()
    sim.set_reading(1, energy_Wh=12_345_680.0)
    assert (await meter.read()).energy_import_Wh == pytest.approx(12_345_680.0)


async def test_modbus_meter_exception_response_is_a_read_error_without_retry(pair, serve, events):
    sim = await serve({1: "sdm630"})
    meter = await meter_on(pair, events)
    sim.exception = ExcCodes.ILLEGAL_ADDRESS
    with pytest.raises(MeterReadError, match="illegal data address") as caught:
        await meter.read()
    assert not isinstance(caught.value, MeterTimeout)
    assert len(sim.requests) == 1


async def test_modbus_meter_stopped_meter_raises_fault_and_clears_on_restart(pair, serve, events):
    sim = await serve({1: "sdm630"})
    meter = await meter_on(pair, events, retries=0, offline_after=2)
    await meter.read()
    await sim.stop()
    for _ in range(2):
        with pytest.raises(MeterTimeout):
            await meter.read()
    assert faults_of(events) == [("raised", 1, "meter-offline")]
    await sim.start()
    assert_shows(await meter.read(), "sdm630")
    assert faults_of(events) == [("raised", 1, "meter-offline"), ("cleared", 1, "meter-offline")]


async def test_modbus_meter_reopens_the_port_after_it_disappears(pair, serve, events):
    sim = await serve({1: "sdm630"})
    meter = await meter_on(pair, events)
    await meter.read()
    assert meter.bus.connected
    await sim.stop()
    await pair.stop()  # both ptys vanish, like an unplugged USB adapter
    await asyncio.sleep(0.05)
    with pytest.raises(MeterReadError):
        await meter.read()
    assert not meter.bus.connected
    await pair.start()
    await sim.start()
    assert_shows(await meter.read(), "sdm630")
    assert meter.bus.connected
    assert "sdm630 id=1" in repr(meter) and "online" in repr(meter)


async def test_modbus_meter_stop_releases_the_bus(pair, serve, events):
    await serve({1: "sdm630", 2: "sdm120"})
    first = await meter_on(pair, events, device_id=1)
    second = await meter_on(pair, events, "sdm120", device_id=2)
    await asyncio.gather(first.read(), second.read())
    bus = first.bus
    await first.stop()
    assert bus.connected and bus.device_ids == (2,)
    await second.stop()
    assert not bus.connected
    assert await open_bus(pair.bus_port, baudrate=BAUD) is not bus  # forgotten: a fresh bus


async def test_modbus_meter_building_opens_nothing(short_dir, events):
    meter = await open_meter(1, emit=events.append, model="em24", port=str(short_dir / "absent"),
                             device_id=3)
    assert not meter.bus.connected and "closed" in repr(meter.bus)
    with pytest.raises(MeterReadError, match="cannot open Modbus port"):
        await meter.read()
    await close_all_buses()


def test_modbus_meter_timeouts_grow_with_the_answer_on_slow_lines():
    bus = ModbusBus("/dev/null", baudrate=2400, parity="E")
    assert bus.char_time_s == pytest.approx(11 / 2400)
    # An SDM120 answer of 76 registers takes 0.7 s at 2400 baud: timeout_s alone would cut it off.
    assert bus.attempt_timeout_s(76, timeout_s=0.3) == pytest.approx(0.3 + (8 + 157) * 11 / 2400)
    assert ModbusBus("/dev/null", baudrate=115200).silence_s == 0.00175


@pytest.mark.slow
async def test_modbus_meter_cpu_and_latency_per_poll(pair, events, capsys):
    # The meter runs in another process, so process_time() counts the driver alone.
    server = subprocess.Popen([sys.executable, "-m", "tests.hal.modbus_sim", pair.meter_port, "sdm630:1"])
    try:
        meter = await meter_on(pair, events)
        for _ in range(50):  # wait for the server, then warm up
            try:
                await meter.read()
                break
            except MeterReadError:
                await asyncio.sleep(0.1)
        latencies, cpu_start = [], time.process_time()
        for _ in range(200):
            started = time.perf_counter()
            await meter.read()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.025)  # polls spaced beyond the model's gap, as the agent's are
        cpu = time.process_time() - cpu_start
    finally:
        server.terminate()
        server.wait()
    latencies.sort()
    with capsys.disabled():
        print(f"\nsdm630 over pty: cpu {cpu / 200 * 1e6:.0f} us/poll, latency p50 "
              f"{statistics.median(latencies) * 1e3:.2f} ms p99 {latencies[197] * 1e3:.2f} ms")
