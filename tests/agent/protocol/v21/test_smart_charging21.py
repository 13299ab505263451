"""What 2.1 adds to a charging profile and this station cannot honour is named, so the profile is refused
with the reason; a profile in 2.0.1's terms passes unchanged."""

import pytest

from agent.protocol.v21.smart_charging import unsupported_21


def profile(*, kind="Absolute", purpose="TxDefaultProfile", period=None, schedule=None, **extra):
    period = {"start_period": 0, "limit": 16.0, **(period or {})}
    return {"id": 1, "stack_level": 0, "charging_profile_purpose": purpose, "charging_profile_kind": kind,
            "charging_schedule": [{"id": 1, "charging_rate_unit": "A", "start_schedule": "2025-01-01T00:00:00Z",
                                   "charging_schedule_period": [period], **(schedule or {})}], **extra}


def test_smart_charging21_a_201_profile_passes():
    assert unsupported_21(profile()) is None
    assert unsupported_21(profile(period={"operation_mode": "ChargingOnly", "number_phases": 3})) is None
    assert unsupported_21(profile(schedule={"use_local_time": False, "randomized_delay": 0})) is None


@pytest.mark.parametrize("changes, words", [
    ({"purpose": "LocalGeneration"}, "LocalGeneration: this station has no local generation input"),
    ({"period": {"limit_l2": 10.0}}, "per-phase limits"),
    ({"period": {"setpoint": -3000.0}}, "setpoint: needs bidirectional (V2X)"),
    ({"period": {"discharge_limit": -5000.0}}, "discharge_limit: needs bidirectional (V2X)"),
    ({"period": {"operation_mode": "CentralSetpoint"}}, "operationMode CentralSetpoint: needs bidirectional"),
    ({"period": {"limit": None, "setpoint": 3000.0}}, "a period without a limit"),
    ({"period": {"evse_sleep": True}}, "needs ISO 15118-20"),
    ({"schedule": {"limit_at_soc": {"soc": 80, "limit": 6.0}}}, "limitAtSoC: needs ISO 15118-20"),
    ({"schedule": {"use_local_time": True}}, "useLocalTime: not yet"),
    ({"max_offline_duration": 600}, "maxOfflineDuration: not yet"),
])
def test_smart_charging21_names_what_it_cannot_honour(changes, words):
    problem = unsupported_21(profile(**changes))
    assert problem is not None and words in problem


def test_smart_charging21_a_dynamic_profile_passes_and_its_updates_are_checked_alike():
    from agent.protocol.v21.smart_charging import unsupported_period_fields

    assert unsupported_21(profile(kind="Dynamic", dyn_update_interval=60, dyn_update_time="2025-01-01T00:00:00Z")) \
        is None
    assert unsupported_period_fields({"limit": 10.0}) is None
    assert "per-phase limits" in unsupported_period_fields({"limit": 10.0, "limit_l3": 10.0})
    assert "V2X" in unsupported_period_fields({"setpoint_reactive": 5.0})
