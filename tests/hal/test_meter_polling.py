"""Live meter polling: a timer per bus owner, the published reading, staleness as a fault."""

import asyncio
import time

import pytest

from hal.errors import MeterReadError, MeterStale
from hal.events import MeterReading
from hal.roles import EnergyMeter
from hal.roles.meter_polling import MeterPoller, next_due
from tests.hal.helpers import faults_of

INTERVAL = 0.05


class LiveMeter(EnergyMeter):
    """A driver that counts its reads, can hang or fail, and records overlapping reads on a shared bus."""

    def __init__(self, evse_id=1, *, bus=None, **options):
        options.setdefault("poll_interval_s", INTERVAL)
        super().__init__(evse_id, **options)
        self.bus = bus if bus is not None else {"busy": 0, "overlaps": 0}
        self.reads = 0
        self.energy = 100.0
        self.failing = False
        self.hang = asyncio.Event()
        self.hang.set()

    async def _read(self):
        self.reads += 1
        self.bus["busy"] += 1
        self.bus["overlaps"] += self.bus["busy"] > 1
        try:
            await asyncio.sleep(0.002)  # a read takes a little time on the bus
            await self.hang.wait()
            if self.failing:
                raise OSError("no answer")
            self.energy += 1.0
            return MeterReading(self.energy, 1000.0, (230.0,), (4.35,), time.time())
        finally:
            self.bus["busy"] -= 1


@pytest.fixture
async def started():
    meters = []

    async def start(meter):
        await meter.start()
        meters.append(meter)
        return meter

    yield start
    for meter in meters:
        await meter.stop()


async def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_meter_polling_next_due_skips_missed_slots():
    assert next_due(10.0, 1.0, 10.2) == 11.0
    assert next_due(10.0, 1.0, 13.5) == 14.0  # three slots missed: no burst of catch-up reads
    assert next_due(10.0, 1.0, 11.0) == 12.0


async def test_meter_polling_polls_on_its_interval_while_nobody_reads(started, events):
    meter = await started(LiveMeter(emit=events.append))
    began = time.monotonic()
    await asyncio.sleep(12 * INTERVAL)
    polls = meter.poller.polls
    expected = (time.monotonic() - began) / INTERVAL
    assert expected - 3 <= polls <= expected + 2, (polls, expected)  # a timer, not a busy loop
    assert polls <= meter.reads <= polls + 1  # one may be under way
    assert meter.latest is not None and meter.latest.energy_import_Wh == meter.energy
    assert time.monotonic() - meter.latest_at < 2 * INTERVAL
    assert faults_of(events) == []


async def test_meter_polling_every_poll_told_to_listeners(started, events):
    meter = LiveMeter(emit=events.append)
    heard = []
    meter.add_listener(lambda evse_id, reading: heard.append((evse_id, reading)))
    await started(meter)
    await wait_for(lambda: len(heard) >= 4)
    assert [evse for evse, _ in heard] == [1] * len(heard)
    energies = [r.energy_import_Wh for _, r in heard]
    assert energies == sorted(energies) and len(set(energies)) == len(energies)


async def test_meter_polling_dead_meter_offline_within_three_intervals_then_clears(started, events):
    meter = LiveMeter(emit=events.append)
    heard = []
    meter.add_listener(lambda evse_id, reading: heard.append(reading))
    await started(meter)
    await wait_for(lambda: meter.latest is not None)
    meter.failing = True
    died = time.monotonic()
    await wait_for(lambda: meter.offline)
    assert time.monotonic() - died <= 3 * INTERVAL + 0.1
    assert faults_of(events) == [("raised", 1, "meter-offline")]
    await wait_for(lambda: meter.latest is None)
    with pytest.raises(MeterStale, match="no good reading"):
        await meter.current()
    assert heard[-1] is None  # the listeners hear the reading went stale
    meter.failing = False
    await wait_for(lambda: not meter.offline, timeout=3 * INTERVAL + 0.5)
    assert faults_of(events) == [("raised", 1, "meter-offline"), ("cleared", 1, "meter-offline")]
    assert (await meter.current()).energy_import_Wh == meter.energy


async def test_meter_polling_hung_read_goes_stale_before_its_timeout(started, events):
    # The read hangs far longer than three intervals: the stale timer, not the read timeout, raises the fault.
    meter = LiveMeter(emit=events.append, read_timeout_s=5.0)
    await started(meter)
    await wait_for(lambda: meter.latest is not None)
    meter.hang.clear()
    hung = time.monotonic()
    await wait_for(lambda: meter.offline)
    assert time.monotonic() - hung <= 3 * INTERVAL + 0.1
    assert meter.latest is None and meter.consecutive_failures == 0  # no read has even failed yet
    meter.hang.set()
    await wait_for(lambda: not meter.offline)


async def test_meter_polling_missing_at_start_goes_offline(started, events):
    meter = LiveMeter(emit=events.append)
    meter.failing = True
    started_at = time.monotonic()
    await started(meter)
    await wait_for(lambda: meter.offline)
    assert time.monotonic() - started_at <= 3 * INTERVAL + 0.1
    assert meter.latest is None and meter.last_reading is None


async def test_meter_polling_read_is_a_fresh_poll_by_the_owner(started, events):
    meter = await started(LiveMeter(emit=events.append, poll_interval_s=10.0))
    await wait_for(lambda: meter.latest is not None)
    first = meter.latest
    asked = time.time()
    reading = await meter.read()
    assert reading.timestamp >= asked and reading.energy_import_Wh > first.energy_import_Wh
    assert meter.poller.polls == 2 and meter.latest is reading
    # current() takes the published reading and does not read again.
    assert await meter.current() is reading and meter.reads == 2
    # ...unless it is older than the consumer wants (a stream sampling faster than the meter is polled).
    await asyncio.sleep(0.02)
    assert (await meter.current(max_age_s=0.01)).energy_import_Wh > reading.energy_import_Wh
    assert meter.bus["overlaps"] == 0


async def test_meter_polling_meters_sharing_a_bus_never_overlap(started, events):
    poller, bus = MeterPoller(name="line"), {"busy": 0, "overlaps": 0}
    fast = await started(LiveMeter(1, emit=events.append, poller=poller, bus=bus))
    slow = await started(LiveMeter(2, emit=events.append, poller=poller, bus=bus, poll_interval_s=2 * INTERVAL))
    await asyncio.sleep(12 * INTERVAL)
    results = await asyncio.gather(fast.read(), slow.read(), fast.read())
    assert all(isinstance(r, MeterReading) for r in results)
    assert bus["overlaps"] == 0
    assert fast.reads >= 1.5 * slow.reads  # each on its own interval
    assert poller.meters == (fast, slow) and "meters=2" in repr(poller)


async def test_meter_polling_stop_ends_the_timer(events):
    meter = LiveMeter(emit=events.append)
    await meter.start()
    await wait_for(lambda: meter.reads >= 2)
    await meter.stop()
    reads = meter.reads
    await asyncio.sleep(4 * INTERVAL)
    assert meter.reads == reads and not meter.polling and not meter.poller.running
    assert faults_of(events) == []  # a stopped meter does not go stale
    assert [t for t in asyncio.all_tasks() if "poller" in t.get_name()] == []
    with pytest.raises(MeterReadError):
        await meter.poller.poll_now(meter, timeout_s=1.0)


async def test_meter_polling_a_listener_bug_does_not_stop_polling(started, events, caplog):
    meter = LiveMeter(emit=events.append)
    meter.add_listener(lambda evse_id, reading: 1 / 0)
    await started(meter)
    await wait_for(lambda: meter.reads >= 3)
    assert "listener" in caplog.text and meter.latest is not None


async def test_meter_polling_mock_meter_offline_while_idle_and_back(make_hal, events):
    station = make_hal(meter_poll_interval_s=INTERVAL)
    await station.start()
    try:
        meter = station.evses[1].meter
        await wait_for(lambda: meter.latest is not None)
        station.inject_fault(1, "meter-offline")  # nobody reads the meter: the poller notices
        injected = time.monotonic()
        await wait_for(lambda: meter.offline)
        assert time.monotonic() - injected <= 3 * INTERVAL + 0.1
        assert faults_of(events) == [("raised", 1, "meter-offline")]
        assert station.snapshot()[0]["raised"] == ["meter-offline"]
        assert station.evses[2].meter.latest is not None  # the other EVSE's meter is fine
        station.clear_fault(1, "meter-offline")
        await wait_for(lambda: not meter.offline)
        assert faults_of(events)[-1] == ("cleared", 1, "meter-offline")
    finally:
        await station.close()
