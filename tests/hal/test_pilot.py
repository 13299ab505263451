"""Pilot contract: events only on change, current limit validation and clamping."""

import math

import pytest

from hal.errors import SimulationError
from hal.events import PilotChanged, PilotState


async def test_pilot_events_only_on_change(hal, events):
    hal.plug(1)
    hal.plug(1)
    hal.ev_charge(1, True)
    hal.ev_charge(1, True)
    hal.ev_charge(1, False)
    hal.unplug(1)
    hal.unplug(1)
    assert events == [PilotChanged(1, PilotState.B), PilotChanged(1, PilotState.C),
                      PilotChanged(1, PilotState.B), PilotChanged(1, PilotState.A)]
    assert hal.evses[2].pilot.state is PilotState.A


async def test_pilot_plug_keeps_a_charging_ev_charging(hal):
    hal.plug(1)
    hal.ev_charge(1, True)
    hal.plug(1)
    assert hal.evses[1].pilot.state is PilotState.C


async def test_pilot_ev_charge_requires_plug(hal, events):
    with pytest.raises(SimulationError, match="no EV plugged"):
        hal.ev_charge(1, True)
    assert events == []


async def test_pilot_error_states_can_be_forced(hal, events):
    hal.set_pilot(1, "E")
    assert events == [PilotChanged(1, PilotState.E)]
    with pytest.raises(ValueError):
        hal.set_pilot(1, "G")


@pytest.mark.parametrize("amps, applied", [(0, 0.0), (6, 6.0), (16.5, 16.5), (32, 32.0),
                                           (80, 32.0), (math.inf, 32.0), (5.9, 0.0)])
async def test_pilot_current_limit_clamped(hal, amps, applied):
    pilot = hal.evses[1].pilot
    assert pilot.set_current_limit_A(amps) == applied
    assert pilot.current_limit_A == applied


@pytest.mark.parametrize("amps, error", [(-1, ValueError), (math.nan, ValueError),
                                         ("16", TypeError), (None, TypeError), (True, TypeError)])
async def test_pilot_current_limit_rejects_invalid(hal, amps, error):
    pilot = hal.evses[1].pilot
    pilot.set_current_limit_A(16)
    with pytest.raises(error):
        pilot.set_current_limit_A(amps)
    assert pilot.current_limit_A == 16.0
    assert hal.recorder.values("evse1.current_limit_A") == [16.0]


async def test_pilot_max_current_per_evse(make_hal):
    station = make_hal(max_current_A={1: 16.0, 2: 32.0})
    assert station.evses[1].pilot.set_current_limit_A(32) == 16.0
    assert station.evses[2].pilot.set_current_limit_A(32) == 32.0


async def test_pilot_starts_suspended_in_state_a(hal):
    pilot = hal.evses[1].pilot
    assert pilot.state is PilotState.A and pilot.current_limit_A == 0.0
    assert repr(pilot) == "<MockPilotController evse=1 state=A limit=0A max=32A>"
