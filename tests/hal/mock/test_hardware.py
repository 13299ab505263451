"""MockHal as a whole: snapshot shape, fault injection and the output history."""

import pytest

from hal.errors import SimulationError
from hal.mock.hardware import INJECTABLE_FAULTS
from tests.hal.helpers import faults_of

SNAPSHOT_KEYS = {"id", "pilot", "contactor_closed", "contactor_feedback", "locked",
                 "current_limit_A", "energy_Wh", "power_W", "faults", "raised"}


async def test_mock_snapshot_shape_and_initial_state(hal):
    snap = hal.snapshot()
    assert [e["id"] for e in snap] == [1, 2]
    assert set(snap[0]) == SNAPSHOT_KEYS
    assert snap[0] == {"id": 1, "pilot": "A", "contactor_closed": False,
                       "contactor_feedback": False, "locked": False, "current_limit_A": 0.0,
                       "energy_Wh": 0.0, "power_W": 0.0, "faults": [], "raised": []}


async def test_mock_snapshot_follows_a_charging_session(hal):
    hw = hal.evses[1]
    hal.plug(1)
    hal.ev_charge(1, True)
    await hw.lock.lock()
    hw.pilot.set_current_limit_A(16)
    hw.contactor.allow_power(True)
    await hw.contactor.close()
    hal.set_power(1, 7200)
    snap = hal.snapshot()[0]
    assert (snap["pilot"], snap["contactor_closed"], snap["contactor_feedback"], snap["locked"],
            snap["current_limit_A"], snap["power_W"]) == ("C", True, True, True, 16.0, 7200.0)


@pytest.mark.parametrize("name", INJECTABLE_FAULTS)
async def test_mock_every_fault_injects_and_clears(hal, events, name):
    hal.inject_fault(1, name)
    assert name in hal.snapshot()[0]["faults"]
    hal.clear_fault(1, name)
    assert hal.snapshot()[0]["faults"] == []
    hal.clear_fault(1, name)  # clearing again is harmless


async def test_mock_rcd_trip_opens_power_path_and_reports(hal, events):
    hw = hal.evses[1]
    hw.contactor.allow_power(True)
    await hw.contactor.close()
    hal.set_power(1, 7200)
    hal.inject_fault(1, "rcd-trip")
    assert not hw.contactor.feedback_closed and hw.meter.power_W == 0.0
    assert faults_of(events) == [("raised", 1, "rcd-trip")]
    assert events[-1].stops_charging is True
    await hw.contactor.open()  # what the agent does on rcd-trip: no further fault
    hal.clear_fault(1, "rcd-trip")
    assert faults_of(events) == [("raised", 1, "rcd-trip"), ("cleared", 1, "rcd-trip")]


async def test_mock_reader_offline_is_station_wide(hal, events):
    hal.inject_fault(2, "reader-offline")
    snap = hal.snapshot()
    assert snap[0]["faults"] == snap[1]["faults"] == ["reader-offline"]
    assert snap[0]["raised"] == ["reader-offline"]
    assert hal.tap("04A1") is False
    hal.clear_fault(1, "reader-offline")
    assert faults_of(events) == [("raised", None, "reader-offline"),
                                 ("cleared", None, "reader-offline")]


async def test_mock_raised_lists_detected_faults(hal):
    hal.inject_fault(1, "meter-offline")
    assert hal.snapshot()[0]["raised"] == []  # not detected until the agent reads the meter
    for _ in range(3):
        with pytest.raises(OSError):
            await hal.evses[1].meter.read()
    assert hal.snapshot()[0]["raised"] == ["meter-offline"]


@pytest.mark.parametrize("call", [
    lambda h: h.plug(9),
    lambda h: h.unplug(True),
    lambda h: h.set_power(0, 10),
    lambda h: h.inject_fault(1, "on-fire"),
    lambda h: h.clear_fault(3, "rcd-trip"),
    lambda h: h.tap("04A1", evse=5),
])
async def test_mock_rejects_unknown_evse_or_fault(hal, call):
    with pytest.raises(SimulationError):
        call(hal)


async def test_mock_set_power_rejects_negative(hal):
    with pytest.raises(ValueError):
        hal.set_power(1, -5)


async def test_mock_history_is_timestamped_and_bounded(make_hal, clock):
    station = make_hal(clock=clock, history_limit=3)
    for amps in (6, 7, 8, 9):
        clock.advance(1)
        station.evses[1].pilot.set_current_limit_A(amps)
    assert station.history == [(1002.0, "evse1.current_limit_A", 7.0),
                               (1003.0, "evse1.current_limit_A", 8.0),
                               (1004.0, "evse1.current_limit_A", 9.0)]


async def test_mock_rejects_bad_construction(make_hal):
    for options in ({"evse_ids": []}, {"evse_ids": [1, 1]}, {"evse_ids": [0]},
                    {"phases": 4}, {"voltage_V": 0.0}, {"max_current_A": {2: 16.0}}):
        with pytest.raises(ValueError):
            make_hal(**options)


async def test_mock_repr_shows_live_state(hal):
    hal.plug(1)
    assert repr(hal).startswith("<MockHal started evse1=B/open/unlocked/0.0Wh evse2=A/open/unlocked")
