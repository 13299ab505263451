"""Energy meter contract (checked readings, offline fault) and the mock meter's physics."""

import asyncio
import json
import math
import time

import pytest

from hal.errors import EnergyWentBackwards, MeterReadError, MeterTimeout
from hal.events import MeterReading
from hal.roles import EnergyMeter
from tests.hal.helpers import faults_of


def reading(energy=100.0, *, power=0.0, volts=(230.0,) * 3, amps=(0.0,) * 3, ts=None):
    return MeterReading(energy, power, volts, amps, time.time() if ts is None else ts)


class ScriptedMeter(EnergyMeter):
    """A driver that returns (or raises) what the test scripted, in order."""

    def __init__(self, script, **options):
        super().__init__(1, **options)
        self.script = list(script)

    async def _read(self):
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, (int, float)):
            await asyncio.sleep(item)  # a meter that takes this long to answer
            return reading()
        return item


async def start_charging(station, evse=1):
    hw = station.evses[evse]
    hw.contactor.allow_power(True)
    await hw.contactor.close()


async def test_meter_energy_integrates_only_while_contactor_closed(make_hal, clock):
    station = make_hal(clock=clock)
    meter = station.evses[1].meter
    station.set_power(1, 7200)
    clock.advance(3600)
    assert meter.energy_Wh == 0.0 and meter.power_W == 0.0  # contactor open: the EV draws nothing
    await start_charging(station)
    clock.advance(1800)
    assert meter.energy_Wh == pytest.approx(3600.0)
    assert meter.power_W == 7200.0
    await station.evses[1].contactor.open()
    clock.advance(3600)
    assert meter.energy_Wh == pytest.approx(3600.0)
    assert station.evses[2].meter.energy_Wh == 0.0


async def test_meter_power_change_splits_the_integral(make_hal, clock):
    station = make_hal(clock=clock)
    await start_charging(station)
    station.set_power(1, 3600)
    clock.advance(600)
    station.set_power(1, 7200)
    clock.advance(600)
    assert station.evses[1].meter.energy_Wh == pytest.approx(600.0 + 1200.0)


async def test_meter_reading_has_per_phase_values(make_hal, clock):
    station = make_hal(clock=clock, phases={1: 3, 2: 1})
    await start_charging(station)
    station.set_power(1, 6900)
    clock.advance(3600)
    value = await station.evses[1].meter.read()
    assert value.energy_import_Wh == pytest.approx(6900.0)
    assert value.power_W == 6900.0
    assert value.voltage_V == (230.0, 230.0, 230.0)
    assert value.current_A == pytest.approx((10.0, 10.0, 10.0))
    assert abs(value.timestamp - time.time()) < 5
    single = await station.evses[2].meter.read()
    assert single.voltage_V == (230.0,) and single.current_A == (0.0,)


async def test_meter_energy_integrates_in_real_time(hal):
    await start_charging(hal)
    hal.set_power(1, 36_000)  # 10 Wh per second
    first = await hal.evses[1].meter.read()
    await asyncio.sleep(0.2)
    second = await hal.evses[1].meter.read()
    assert 1.5 <= second.energy_import_Wh - first.energy_import_Wh <= 4.0


async def test_meter_offline_after_n_failures_then_recovers(hal, events):
    meter = hal.evses[1].meter
    hal.inject_fault(1, "meter-offline")
    for attempt in range(1, meter.offline_after + 1):
        assert faults_of(events) == []
        with pytest.raises(MeterTimeout):
            await meter.read()
        assert meter.consecutive_failures == attempt
    assert faults_of(events) == [("raised", 1, "meter-offline")]
    assert events[-1].stops_charging is False
    with pytest.raises(MeterTimeout):
        await meter.read()
    assert len(faults_of(events)) == 1
    hal.clear_fault(1, "meter-offline")
    assert faults_of(events) == [("raised", 1, "meter-offline")]  # cleared by a good read only
    await meter.read()
    assert faults_of(events)[-1] == ("cleared", 1, "meter-offline")
    assert meter.consecutive_failures == 0 and not meter.offline


async def test_meter_failed_read_raises_never_returns_zeros(hal):
    meter = hal.evses[1].meter
    good = await meter.read()
    hal.inject_fault(1, "meter-offline")
    with pytest.raises(MeterReadError):
        await meter.read()
    assert meter.last_reading is good


async def test_meter_backwards_energy_rejected():
    meter = ScriptedMeter([reading(100.0), reading(99.5), reading(100.0)], emit=lambda e: None)
    await meter.read()
    with pytest.raises(EnergyWentBackwards, match="went backwards"):
        await meter.read()
    with pytest.raises(ValueError):
        raise EnergyWentBackwards("it is a ValueError too")
    assert (await meter.read()).energy_import_Wh == 100.0


async def test_meter_timeout_enforced_by_base():
    meter = ScriptedMeter([1.0], emit=lambda e: None, read_timeout_s=0.05)
    with pytest.raises(MeterTimeout, match="did not answer"):
        await meter.read()


async def test_meter_driver_exception_wrapped_with_cause():
    cause = OSError("serial port vanished")
    meter = ScriptedMeter([cause], emit=lambda e: None)
    with pytest.raises(MeterReadError) as info:
        await meter.read()
    assert info.value.__cause__ is cause


@pytest.mark.parametrize("bad", [
    reading(math.nan),
    reading(-1.0),
    reading(volts=(230.0, 230.0), amps=(1.0,)),
    reading(volts=(), amps=()),
    reading(volts=(230_000.0,), amps=(1.0,)),
    reading(amps=(16_000.0, 0.0, 0.0)),
    reading(power=math.inf),
    "not a reading",
])
async def test_meter_insane_reading_rejected(bad):
    meter = ScriptedMeter([bad], emit=lambda e: None)
    with pytest.raises(MeterReadError):
        await meter.read()


async def test_meter_stale_reading_rejected_when_max_age_set():
    meter = ScriptedMeter([reading(ts=time.time() - 60)], emit=lambda e: None, max_age_s=10)
    with pytest.raises(MeterReadError, match="stale"):
        await meter.read()


async def test_meter_register_survives_a_new_mock_hal(make_hal, clock, tmp_path):
    first = make_hal(clock=clock)
    await first.start()
    await start_charging(first)
    first.set_power(1, 7200)
    clock.advance(1800)
    await first.close()
    saved = json.loads((tmp_path / "mock-meter.json").read_text())
    assert saved["energy_Wh"]["1"] == pytest.approx(3600.0)
    second = make_hal(clock=clock)
    assert second.evses[1].meter.energy_Wh == pytest.approx(3600.0)
    assert (await second.evses[1].meter.read()).energy_import_Wh == pytest.approx(3600.0)


async def test_meter_register_written_atomically_only_when_changed(make_hal, clock, tmp_path):
    station = make_hal(clock=clock)
    assert station.persist_energy() is True  # first save creates the file
    assert station.persist_energy() is False  # nothing changed
    await start_charging(station)
    station.set_power(1, 1000)
    clock.advance(36)
    assert station.persist_energy() is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock-meter.json"]  # no temp files left


async def test_meter_register_saved_periodically_while_running(hal, tmp_path, monkeypatch):
    monkeypatch.setattr("hal.mock.hardware.PERSIST_INTERVAL_S", 0.02)
    await hal.close()  # restart the ticker with the short interval
    await hal.start()
    await start_charging(hal)
    hal.set_power(1, 36_000)
    await asyncio.sleep(0.15)
    saved = json.loads((tmp_path / "mock-meter.json").read_text())
    assert saved["energy_Wh"]["1"] > 0


async def test_meter_corrupt_register_file_starts_at_zero(make_hal, tmp_path, caplog):
    (tmp_path / "mock-meter.json").write_text("{half a file")
    station = make_hal()
    assert station.evses[1].meter.energy_Wh == 0.0
    assert "unreadable mock meter file" in caplog.text


async def test_meter_keeps_registers_of_evses_not_configured(make_hal, tmp_path):
    (tmp_path / "mock-meter.json").write_text(json.dumps({"energy_Wh": {"1": 5.0, "7": 42.0}}))
    station = make_hal(evse_ids=[1])
    assert station.evses[1].meter.energy_Wh == 5.0
    station.evses[1].meter._energy_Wh = 6.0
    station.persist_energy()
    saved = json.loads((tmp_path / "mock-meter.json").read_text())["energy_Wh"]
    assert saved == {"1": 6.0, "7": 42.0}
