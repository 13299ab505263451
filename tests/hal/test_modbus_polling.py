"""Live polling of real Modbus meters: two meters on one pty line, one poller, a meter that stops answering."""

import asyncio
import re
import time

import pytest

from hal.drivers.modbus_meter import close_all_buses, open_meter
from hal.meters import load_register_map
from tests.hal.helpers import faults_of
from tests.hal.modbus_sim import MeterSim, PtyPair

BAUD = 115200  # ptys ignore it; a fast rate keeps the computed transmission times small
INTERVAL = 0.2


@pytest.fixture
async def line(short_dir):
    """A pty line with a simulated SDM630 (id 1) and ABB B23 (id 2) on it, and their meters, polled."""
    pair = PtyPair(short_dir)
    await pair.start()
    sim = MeterSim(pair.meter_port, meters={1: load_register_map("sdm630"), 2: load_register_map("abb-b23")})
    await sim.start()
    events: list = []
    meters = [await open_meter(evse_id, emit=events.append, model=model, port=pair.bus_port, device_id=evse_id,
                               baudrate=BAUD, timeout_s=0.1, poll_interval_s=INTERVAL)
              for evse_id, model in ((1, "sdm630"), (2, "abb-b23"))]
    yield sim, meters, events
    for meter in meters:
        await meter.stop()
    await close_all_buses()
    await sim.stop()
    await pair.stop()


async def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_modbus_polling_two_meters_one_owner_reads_never_interleave(line):
    sim, meters, events = line
    first, second = meters
    assert first.poller is second.poller is first.bus.poller
    for meter in meters:
        await meter.start()
    began = time.monotonic()
    await asyncio.sleep(10 * INTERVAL)
    elapsed = time.monotonic() - began
    assert all(m.latest is not None for m in meters)
    # One SDM630 block, two ABB blocks: every poll is whole, never cut by the other meter's.
    ids = "".join(str(device_id) for _, device_id, *_ in sim.requests)
    assert re.fullmatch(r"(1|22)+", ids), ids
    polls = ids.count("1"), ids.count("22")
    assert all(elapsed / INTERVAL - 2 <= n <= elapsed / INTERVAL + 2 for n in polls), (polls, elapsed)
    assert faults_of(events) == []


async def test_modbus_polling_meter_that_stops_answering_is_offline_while_idle(line):
    sim, meters, events = line
    for meter in meters:
        await meter.start()
    await wait_for(lambda: all(m.latest is not None for m in meters))
    await sim.stop()  # the meters lose power; nobody reads them but the poller
    died = time.monotonic()
    await wait_for(lambda: all(m.offline for m in meters))
    bound = 3 * INTERVAL + meters[0].read_timeout_s
    assert time.monotonic() - died <= bound, bound
    assert sorted(faults_of(events)) == [("raised", 1, "meter-offline"), ("raised", 2, "meter-offline")]
    assert all(m.latest is None for m in meters)
    await sim.start()
    back = time.monotonic()
    await wait_for(lambda: not any(m.offline for m in meters))
    assert time.monotonic() - back <= 3 * INTERVAL + 1.0
    assert sorted(faults_of(events))[:2] == [("cleared", 1, "meter-offline"), ("cleared", 2, "meter-offline")]
    assert all(m.latest is not None for m in meters)
