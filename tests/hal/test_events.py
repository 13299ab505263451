"""Events, readings and the fault table."""

import dataclasses
import logging

import pytest

from hal.events import (
    FaultCleared, FaultRaised, MeterReading, PilotChanged, PilotState, TokenPresented, deliver,
)
from hal.faults import FAULTS, FaultTracker, fault_spec


def test_pilot_state_values_and_helpers():
    assert [s.value for s in PilotState] == ["A", "B", "C", "D", "E", "F"]
    assert PilotState("C") is PilotState.C and PilotState.C == "C"
    assert [s.value for s in PilotState if s.plugged] == ["B", "C", "D"]
    assert [s.value for s in PilotState if s.requesting] == ["C", "D"]


@pytest.mark.parametrize("event", [
    PilotChanged(1, PilotState.B),
    TokenPresented("04A1", None),
    FaultRaised(1, "rcd-trip", True),
    FaultCleared(1, "rcd-trip"),
    MeterReading(1.0, 2.0, (230.0,), (1.0,), 0.0),
])
def test_events_are_frozen(event):
    field = dataclasses.fields(event)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, None)


def test_meter_reading_as_dict_has_per_phase_lists():
    reading = MeterReading(10.0, 690.0, (230.0, 230.0, 230.0), (1.0, 1.0, 1.0), 5.0)
    assert reading.as_dict() == {"energy_import_Wh": 10.0, "power_W": 690.0,
                                 "voltage_V": [230.0] * 3, "current_A": [1.0] * 3,
                                 "timestamp": 5.0}


def test_faults_table_has_codes_and_severity():
    assert {code: spec.stops_charging for code, spec in FAULTS.items()} == {
        "contactor-welded": True, "contactor-stuck-open": True, "lock-failure": True,
        "meter-offline": False, "rcd-trip": True, "reader-offline": False, "pilot-offline": True,
    }
    assert all(spec.description and "\n" not in spec.description for spec in FAULTS.values())


def test_fault_spec_unknown_code_rejected():
    with pytest.raises(ValueError, match="unknown fault code"):
        fault_spec("on-fire")


def test_fault_tracker_emits_only_on_transitions():
    events = []
    tracker = FaultTracker(3, emit=events.append)
    assert tracker.raise_fault("meter-offline", info="x")
    assert not tracker.raise_fault("meter-offline")
    assert tracker.active == {"meter-offline"}
    assert tracker.clear_fault("meter-offline")
    assert not tracker.clear_fault("meter-offline")
    assert events == [FaultRaised(3, "meter-offline", False, "x"), FaultCleared(3, "meter-offline")]


def test_deliver_logs_a_failing_consumer_instead_of_raising(caplog):
    def broken(event):
        raise RuntimeError("queue gone")

    with caplog.at_level(logging.ERROR):
        deliver(broken, FaultCleared(1, "rcd-trip"))
    assert "event consumer failed" in caplog.text
