"""Meter values: building samples from readings, and the periodic / clock-aligned sampler."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from agent.runtime.clock import Clock
from agent.core.charging.metering import (
    CLOCK,
    PERIODIC,
    SUPPORTED_MEASURANDS,
    MeterSampler,
    _next_period,
    next_boundary,
    sample_reading,
)
from agent.core.charging.model import MeterSample, Sample
from hal.errors import MeterTimeout
from hal.events import MeterReading
from hal.mock.hardware import MockHal
from hal.roles.meter import EnergyMeter

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
THREE_PHASE = MeterReading(energy_import_Wh=12345.678, power_W=11040.04, voltage_V=(230.123, 231.0, 229.996),
                           current_A=(16.004, 15.996, 16.0), timestamp=1.0)
ONE_PHASE = MeterReading(energy_import_Wh=5.0, power_W=3680.0, voltage_V=(230.0,), current_A=(16.0,),
                         timestamp=1.0)

# Intervals are ints in production; the sampler takes any number, so tests use fractions of a second.
PERIOD_S = 0.1


def values(sample: MeterSample) -> list[tuple]:
    """(measurand, value, unit, phase) of every value, in order."""
    return [(s.measurand, s.value, s.unit, s.phase) for s in sample.values]


class FakeSettings(dict):
    """Setting values by name, with the store's subscribe(); ``set`` notifies like the store."""

    def __init__(self, **values) -> None:
        super().__init__(meter_value_sample_interval_s=0, clock_aligned_data_interval_s=0,
                         meter_values_sampled_data=(ENERGY, POWER), meter_values_aligned_data=(ENERGY,))
        self.update(values)
        self.listeners = []

    def subscribe(self, listener) -> None:
        self.listeners.append(listener)

    def set(self, name: str, value) -> None:
        self[name] = value
        for listener in self.listeners:
            listener(name, value)


class FakeMeter(EnergyMeter):
    """A meter with a settable register that can be made to time out."""

    def __init__(self, evse_id: int, *, phases: int = 3) -> None:
        super().__init__(evse_id, emit=lambda event: None)
        self.phases = phases
        self.energy_Wh = 1000.0
        self.failing = False
        self.reads = 0

    async def _read(self) -> MeterReading:
        self.reads += 1
        if self.failing:
            raise MeterTimeout("fake meter offline")
        self.energy_Wh += 1.0
        phases = self.phases
        return MeterReading(self.energy_Wh, 2300.0, (230.0,) * phases, (10.0 / phases,) * phases, time.time())


class Station:
    """A sampler over fake meters, recording what reaches the sink."""

    def __init__(self, *, evse_ids=(1, 2), offset_s: float = 0.0, **settings) -> None:
        self.meters = {i: FakeMeter(i) for i in evse_ids}
        self.clock = Clock()
        self.clock.offset_s = offset_s
        self.settings = FakeSettings(**settings)
        self.transactions: dict[int, str] = {}
        self.received: list[tuple[int, MeterSample, str | None]] = []
        self.sampler = MeterSampler(meters=self.meters, clock=self.clock, settings=self.settings,
                                    sink=self.sink, transaction_of=self.transactions.get,
                                    offered_A=lambda evse_id: 16.0)

    def sink(self, evse_id: int, sample: MeterSample, ref: str | None) -> None:
        self.received.append((evse_id, sample, ref))

    def begin(self, evse_id: int, ref: str) -> None:
        self.transactions[evse_id] = ref
        self.sampler.transaction_started(evse_id)

    def end(self, evse_id: int) -> None:
        self.transactions.pop(evse_id)
        self.sampler.transaction_ended(evse_id)

    async def wait_for(self, count: int, timeout_s: float = 2.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} samples in {timeout_s} s"
            await asyncio.sleep(0.005)


@pytest.fixture
async def station():
    made = []

    def make(**options) -> Station:
        made.append(Station(**options))
        return made[-1]

    yield make
    for s in made:
        await s.sampler.stop()


def other_tasks() -> set[asyncio.Task]:
    return asyncio.all_tasks() - {asyncio.current_task()}


# -- sample_reading ----------------------------------------------------------

def test_sample_reading_energy_total_in_wh():
    sample = sample_reading(THREE_PHASE, [ENERGY], context=PERIODIC, timestamp=42.0)
    assert sample == MeterSample(42.0, (Sample(ENERGY, 12345.7, "Wh", None, PERIODIC, "Outlet"),))


def test_sample_reading_power_total_in_w():
    assert values(sample_reading(THREE_PHASE, [POWER], context=PERIODIC, timestamp=0)) == [
        (POWER, 11040.0, "W", None)]


def test_sample_reading_voltage_per_phase_to_neutral():
    assert values(sample_reading(THREE_PHASE, ["Voltage"], context=PERIODIC, timestamp=0)) == [
        ("Voltage", 230.12, "V", "L1-N"), ("Voltage", 231.0, "V", "L2-N"), ("Voltage", 230.0, "V", "L3-N")]


def test_sample_reading_current_import_per_phase():
    assert values(sample_reading(THREE_PHASE, ["Current.Import"], context=PERIODIC, timestamp=0)) == [
        ("Current.Import", 16.0, "A", "L1"), ("Current.Import", 16.0, "A", "L2"),
        ("Current.Import", 16.0, "A", "L3")]


def test_sample_reading_single_phase_meter_gives_only_l1():
    sample = sample_reading(ONE_PHASE, ["Voltage", "Current.Import", ENERGY], context=PERIODIC, timestamp=0)
    assert values(sample) == [("Voltage", 230.0, "V", "L1-N"), ("Current.Import", 16.0, "A", "L1"),
                              (ENERGY, 5.0, "Wh", None)]


@pytest.mark.parametrize("measurand, field, raw, expected", [
    (ENERGY, "energy_import_Wh", 0.04, 0.0),
    (ENERGY, "energy_import_Wh", 999.95, 1000.0),
    (POWER, "power_W", 1234.56, 1234.6),
    (POWER, "power_W", -0.004, 0.0),  # a tiny negative reads 0.0, not -0.0
    ("Voltage", "voltage_V", (229.995,), 230.0),
    ("Current.Import", "current_A", (6.3333,), 6.33),
])
def test_sample_reading_rounding(measurand, field, raw, expected):
    fields = ONE_PHASE.as_dict() | {field: raw}
    reading = MeterReading(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    value = sample_reading(reading, [measurand], context=PERIODIC, timestamp=0).values[0].value
    assert value == expected and str(value) == str(expected)


def test_sample_reading_offered_current_only_when_known():
    offered = sample_reading(ONE_PHASE, ["Current.Offered"], context=PERIODIC, timestamp=0, offered_A=15.999)
    assert values(offered) == [("Current.Offered", 16.0, "A", None)]
    assert sample_reading(ONE_PHASE, ["Current.Offered"], context=PERIODIC, timestamp=0).values == ()


def test_sample_reading_unknown_measurand_skipped_request_order_kept():
    sample = sample_reading(ONE_PHASE, [POWER, "SoC", ENERGY, "Frequency"], context=CLOCK, timestamp=7.5)
    assert [s.measurand for s in sample.values] == [POWER, ENERGY]
    assert {s.context for s in sample.values} == {CLOCK}
    assert sample.timestamp == 7.5


def test_sample_reading_every_supported_measurand_produces_values():
    for measurand in SUPPORTED_MEASURANDS:
        assert sample_reading(THREE_PHASE, [measurand], context=PERIODIC, timestamp=0, offered_A=32).values


# -- schedule arithmetic -----------------------------------------------------

def test_next_boundary_quarter_hours_from_midnight_utc():
    midnight = 1_700_006_400.0  # 2023-11-15T00:00:00Z
    assert midnight % 86400 == 0
    assert next_boundary(midnight + 1, 900) == midnight + 900
    assert next_boundary(midnight + 899.9, 900) == midnight + 900
    assert next_boundary(midnight + 900, 900) == midnight + 1800  # strictly after
    assert next_boundary(midnight + 3599, 900) == midnight + 3600


def test_next_period_skips_missed_periods_without_burst():
    assert _next_period(10.0, 5.0, now=12.0) == 15.0
    assert _next_period(10.0, 5.0, now=31.0) == 35.0


# -- MeterSampler: periodic ----------------------------------------------------

async def test_sampler_periodic_at_interval_during_transaction_only(station):
    s = station(meter_value_sample_interval_s=PERIOD_S, offset_s=500.0)
    await s.sampler.start()
    started = time.time()
    s.begin(1, "tx-1")
    await s.wait_for(3)
    s.end(1)
    count = len(s.received)
    await asyncio.sleep(2 * PERIOD_S)
    assert len(s.received) == count  # nothing after the end
    assert {(evse, ref) for evse, _, ref in s.received} == {(1, "tx-1")}
    stamps = [sample.timestamp for _, sample, _ in s.received]
    assert stamps[0] - 500.0 - started == pytest.approx(PERIOD_S, abs=0.05)  # corrected clock, one period in
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(gap == pytest.approx(PERIOD_S, abs=0.05) for gap in gaps)
    assert [s.measurand for s in s.received[0][1].values] == [ENERGY, POWER]
    assert {v.context for _, sample, _ in s.received for v in sample.values} == {PERIODIC}
    assert other_tasks() == set()


async def test_sampler_periodic_skipped_without_transaction_ref(station):
    s = station(meter_value_sample_interval_s=PERIOD_S)
    await s.sampler.start()
    s.sampler.transaction_started(1)  # the station has no ref for it
    await asyncio.sleep(2.5 * PERIOD_S)
    assert s.received == [] and s.meters[1].reads == 0


async def test_sampler_started_after_transaction_begins_its_stream(station):
    s = station(meter_value_sample_interval_s=PERIOD_S)
    s.begin(2, "tx-2")
    assert other_tasks() == set()  # nothing runs before start()
    await s.sampler.start()
    await s.wait_for(1)
    assert s.received[0][0] == 2


async def test_sampler_idle_runs_no_task(station):
    s = station(meter_value_sample_interval_s=60, clock_aligned_data_interval_s=0)
    await s.sampler.start()
    assert other_tasks() == set()
    s.settings.set("meter_value_sample_interval_s", 0)
    s.begin(1, "tx-1")  # a transaction, but periodic sampling is off
    assert other_tasks() == set()


async def test_sampler_measurand_change_applies_at_next_sample(station):
    s = station(meter_value_sample_interval_s=PERIOD_S)
    await s.sampler.start()
    s.begin(1, "tx-1")
    await s.wait_for(1)
    s.settings.set("meter_values_sampled_data", ("Current.Offered", "Voltage"))
    await s.wait_for(2)
    assert values(s.received[1][1])[0] == ("Current.Offered", 16.0, "A", None)
    assert [v.phase for v in s.received[1][1].values[1:]] == ["L1-N", "L2-N", "L3-N"]


# -- MeterSampler: settings ----------------------------------------------------

async def test_sampler_interval_change_restarts_periodic_timer(station):
    s = station(meter_value_sample_interval_s=60)
    await s.sampler.start()
    s.begin(1, "tx-1")
    await asyncio.sleep(0.05)
    changed = time.monotonic()
    s.settings.set("meter_value_sample_interval_s", PERIOD_S)
    await s.wait_for(1)
    assert time.monotonic() - changed == pytest.approx(PERIOD_S, abs=0.05)
    s.settings.set("meter_value_sample_interval_s", 0)
    await asyncio.sleep(0)
    assert other_tasks() == set()


async def test_sampler_same_interval_set_again_keeps_timer(station):
    s = station(meter_value_sample_interval_s=0.2)
    await s.sampler.start()
    began = time.monotonic()
    s.begin(1, "tx-1")
    await asyncio.sleep(0.12)
    s.settings.set("meter_value_sample_interval_s", 0.2)  # e.g. a CSMS re-sending its configuration
    await s.wait_for(1)
    assert time.monotonic() - began == pytest.approx(0.2, abs=0.05)


async def test_sampler_aligned_interval_change_starts_and_stops_stream(station):
    s = station()
    await s.sampler.start()
    s.settings.set("clock_aligned_data_interval_s", 0.1)
    await s.wait_for(2)
    s.settings.set("clock_aligned_data_interval_s", 0)
    await asyncio.sleep(0)
    assert other_tasks() == set()


# -- MeterSampler: clock-aligned -------------------------------------------------

async def test_sampler_aligned_on_corrected_clock_boundaries_for_every_evse(station):
    interval = 0.1
    s = station(clock_aligned_data_interval_s=interval, offset_s=0.07)
    s.transactions[2] = "tx-2"
    await s.sampler.start()
    await s.wait_for(4)
    assert sorted((evse, ref) for evse, _, ref in s.received[:4]) == [(1, None), (1, None), (2, "tx-2"),
                                                                     (2, "tx-2")]
    for _, sample, _ in s.received:
        late = sample.timestamp % interval
        assert min(late, interval - late) < 0.03, sample.timestamp  # on a boundary of the corrected clock
        assert [(v.measurand, v.context) for v in sample.values] == [(ENERGY, CLOCK)]


async def test_sampler_aligned_realigns_when_clock_set_back(station):
    s = station(clock_aligned_data_interval_s=0.1, evse_ids=(1,))
    await s.sampler.start()
    await s.wait_for(1)
    s.clock.offset_s -= 3600  # the CSMS corrects the clock by an hour back
    await s.wait_for(2, timeout_s=1.0)  # not an hour later
    assert s.received[1][1].timestamp < s.received[0][1].timestamp


# -- MeterSampler: failures, on demand, life cycle ---------------------------------

async def test_sampler_failed_read_skipped_and_logged_once_per_streak(station, caplog):
    s = station(meter_value_sample_interval_s=PERIOD_S, evse_ids=(1,))
    await s.sampler.start()
    s.meters[1].failing = True
    s.begin(1, "tx-1")
    with caplog.at_level(logging.INFO, logger="agent.core.charging.metering"):
        async with asyncio.timeout(2):
            while s.meters[1].reads < 2:
                await asyncio.sleep(0.01)
        assert s.received == []
        s.meters[1].failing = False
        await s.wait_for(1)
    messages = [r.getMessage() for r in caplog.records if r.name == "agent.core.charging.metering"]
    assert len(messages) == 2 and "unreadable" in messages[0] and "again" in messages[1]


async def test_sampler_sink_failure_does_not_end_stream(station, caplog):
    s = station(meter_value_sample_interval_s=PERIOD_S)
    calls = []

    def broken(evse_id, sample, ref):
        calls.append(sample)
        raise RuntimeError("consumer bug")

    s.sampler._sink = broken
    await s.sampler.start()
    s.begin(1, "tx-1")
    async with asyncio.timeout(2):
        while len(calls) < 2:
            await asyncio.sleep(0.01)
    assert "sink failed" in caplog.text


async def test_sampler_sample_now(station):
    s = station()
    sample = await s.sampler.sample_now(1, ["Current.Offered", ENERGY, "SoC"], context="Transaction.Begin")
    assert values(sample) == [("Current.Offered", 16.0, "A", None), (ENERGY, 1001.0, "Wh", None)]
    assert {v.context for v in sample.values} == {"Transaction.Begin"}
    assert sample.timestamp == pytest.approx(s.clock.time(), abs=0.5)
    assert await s.sampler.sample_now(1, ["SoC"], context="Trigger") is None
    csv = await s.sampler.sample_now(1, "Power.Active.Import, Voltage", context="Trigger")
    assert [v.measurand for v in csv.values] == [POWER, "Voltage", "Voltage", "Voltage"]
    s.meters[1].failing = True
    assert await s.sampler.sample_now(1, [ENERGY], context="Trigger") is None
    with pytest.raises(ValueError, match="unknown EVSE 9"):
        await s.sampler.sample_now(9, [ENERGY], context="Trigger")


async def test_sampler_stop_leaves_no_tasks(station):
    s = station(meter_value_sample_interval_s=PERIOD_S, clock_aligned_data_interval_s=0.2)
    await s.sampler.start()
    s.begin(1, "tx-1")
    s.begin(2, "tx-2")
    assert len(other_tasks()) == 3
    await s.sampler.stop()
    assert other_tasks() == set() and not s.sampler.running
    await s.sampler.stop()  # idempotent
    s.settings.set("clock_aligned_data_interval_s", 1)  # ignored while stopped
    assert other_tasks() == set()


# -- with the mock HAL -------------------------------------------------------------

async def test_sampler_with_mock_hal_meters_energy_and_skips_offline_meter(tmp_path):
    hal = MockHal(evse_ids=[1, 2], data_dir=tmp_path, emit=lambda event: None, feedback_timeout_s=0.05)
    await hal.start()
    received = []
    settings = FakeSettings(meter_value_sample_interval_s=PERIOD_S)
    sampler = MeterSampler(meters={i: hal.evse(i).meter for i in hal.evses}, clock=Clock(), settings=settings,
                           sink=lambda *args: received.append(args), transaction_of={1: "tx-1"}.get)
    try:
        hal.evse(1).contactor.allow_power(True)
        await hal.evse(1).contactor.close()
        hal.set_power(1, 36_000.0)  # 10 Wh per second
        await sampler.start()
        sampler.transaction_started(1)
        async with asyncio.timeout(2):
            while len(received) < 2:
                await asyncio.sleep(0.01)
        first, second = ({v.measurand: v.value for v in sample.values} for _, sample, _ in received[:2])
        assert first[POWER] == 36_000.0 and 0 < second[ENERGY] - first[ENERGY] < 3
        hal.inject_fault(1, "meter-offline")
        count = len(received)
        await asyncio.sleep(2.5 * PERIOD_S)
        assert len(received) == count  # skipped, never zeros
    finally:
        await sampler.stop()
        await hal.close()


# -- with live (polled) meters -------------------------------------------------------

async def test_sampler_takes_the_polled_reading_and_never_reads_the_bus_itself():
    meter = FakeMeter(1)
    meter.poll_interval_s = 0.02  # polled well within half the sampling period
    settings = FakeSettings(meter_value_sample_interval_s=PERIOD_S)
    received, heard = [], []
    sampler = MeterSampler(meters={1: meter}, clock=Clock(), settings=settings,
                           sink=lambda *args: received.append(args), transaction_of={1: "tx-1"}.get)
    sampler.add_reading_listener(lambda evse_id, reading: heard.append(reading))
    on_demand = []
    read = meter.read
    meter.read = lambda: on_demand.append(1) or read()  # a read of its own, instead of the published one
    await meter.start()
    try:
        await sampler.start()
        sampler.transaction_started(1)
        async with asyncio.timeout(2):
            while len(received) < 3:
                await asyncio.sleep(0.01)
        polls = meter.poller.polls
        assert polls <= meter.reads <= polls + 1  # every read was the poller's
        assert on_demand == [] and len({s.values[0].value for _, s, _ in received}) == len(received)
        assert len(heard) == len(received)  # the sampler's listeners hear its samples
        meter.failing = True  # dead: once its reading is stale (3 polls), samples stop
        await asyncio.sleep(3 * meter.poll_interval_s + 0.05)
        count = len(received)
        await asyncio.sleep(2.5 * PERIOD_S)
        assert len(received) == count and meter.offline
    finally:
        await sampler.stop()
        await meter.stop()
