"""Hal life cycle: start with rollback, safe state ordering, close; import is hardware-free."""

import subprocess
import sys

import pytest

from hal.hardware import EvseHardware, Hal
from hal.errors import HalStartError


async def charge(station, evse=1):
    hw = station.evses[evse]
    await hw.lock.lock()
    hw.pilot.set_current_limit_A(32)
    hw.contactor.allow_power(True)
    await hw.contactor.close()


def outputs(station, evse=1):
    prefix = f"evse{evse}."
    return [(device.removeprefix(prefix), value)
            for _, device, value in station.history if device.startswith(prefix)]


async def test_hal_safe_state_opens_contactor_before_unlock_and_sets_0_A(hal):
    await charge(hal)
    await hal.safe_state()
    assert outputs(hal)[-3:] == [("current_limit_A", 0.0), ("contactor", False), ("lock", False)]
    times = [t for t, _, _ in hal.history]
    assert times == sorted(times)
    hw = hal.evses[1]
    assert not hw.contactor.closed and not hw.contactor.feedback_closed
    assert not hw.contactor.power_allowed and not hw.lock.locked


async def test_hal_safe_state_keeps_cable_locked_when_contactor_welded(hal, caplog):
    await charge(hal)
    hal.inject_fault(1, "contactor-welded")
    await hal.safe_state()  # never raises
    hw = hal.evses[1]
    assert hw.lock.locked and not hw.contactor.closed
    assert ("lock", False) not in outputs(hal)
    assert "cable stays locked" in caplog.text


async def test_hal_safe_state_survives_a_broken_device(hal, caplog):
    await charge(hal)

    def broken(amps):
        raise OSError("PWM chip gone")

    hal.evses[1].pilot._apply_current_limit = broken
    await hal.safe_state()
    assert not hal.evses[1].contactor.closed and not hal.evses[1].lock.locked
    assert "cannot suspend the current offer" in caplog.text


async def test_hal_close_makes_safe_then_releases(make_hal, tmp_path):
    station = make_hal()
    await station.start()
    await charge(station)
    await station.close()
    assert not station.evses[1].contactor.closed and not station.evses[1].lock.locked
    assert (tmp_path / "mock-meter.json").exists()
    assert not station.started and "<MockHal stopped" in repr(station)


async def test_hal_start_failure_stops_started_devices(make_hal):
    station = make_hal(evse_ids=[1])
    stopped = []
    hw = station.evses[1]

    async def record_stop(name):
        stopped.append(name)

    async def fail():
        raise OSError("/dev/ttyUSB1: no such device")

    hw.contactor._stop = lambda: record_stop("contactor")
    hw.lock._stop = lambda: record_stop("lock")
    hw.meter._start = fail
    with pytest.raises(HalStartError, match="ttyUSB1") as info:
        await station.start()
    assert isinstance(info.value.__cause__, OSError)
    assert stopped == ["lock", "contactor"]


async def test_hal_rejects_duplicate_or_mismatched_evses(make_hal):
    station = make_hal()
    one, two = station.evses[1], station.evses[2]
    with pytest.raises(ValueError, match="twice"):
        Hal(evses=[one, one])
    with pytest.raises(ValueError, match="belongs to EVSE 2"):
        EvseHardware(1, one.contactor, one.lock, two.meter, one.pilot)
    with pytest.raises(KeyError, match="known: \\[1, 2\\]"):
        station.evse(9)


async def test_hal_display_shows_text_and_records_it(hal):
    hal.display.show("Tap your card")
    hal.display.show("Tap your card")
    hal.display.show(None)
    assert hal.display.text is None
    assert hal.recorder.values("display") == ["Tap your card", None]
    with pytest.raises(TypeError):
        hal.display.show(42)


def test_hal_import_touches_no_hardware_library():
    code = (
        "import sys, hal, hal.hardware, hal.mock, hal.mock.control, hal.mock.client, hal.roles\n"
        "bad = [m for m in ('RPi', 'gpiod', 'serial', 'pymodbus', 'gpiozero') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
