"""OCPP 2.1 in the version-neutral engine (pure, no I/O): PriorityCharging profiles stand in for the Tx profiles
of an EVSE only while priority charging is active for its transaction, the station maximum still caps them;
an Idle period offers 0 A while it is in force."""

from agent.core.charging.smart_charging import (
    ABSOLUTE,
    AMPS,
    CHARGE_POINT_MAX,
    TX_DEFAULT,
    TX_PROFILE,
    ChargingProfile,
    ChargingSchedule,
    ChargingSchedulePeriod,
    composite_schedule,
    limit_at,
    validate_profile,
)
from agent.core.charging.smart_charging.model import IDLE, PRIORITY_CHARGING
from agent.core.charging.smart_charging.priority import priority_profiles, profiles_for_evse

T0 = 1_704_067_200
SITE = {"evse_id": 1, "now_tx_start": T0, "transaction_ref": "tx1", "phases": 3, "evse_max_A": 32.0}


def _profile(pid, purpose, limit, *, evse=1, stack=0, periods=None, tx=None):
    periods = periods or (ChargingSchedulePeriod(0, limit),)
    return ChargingProfile(pid, stack, purpose, ABSOLUTE, ChargingSchedule(AMPS, tuple(periods), start_schedule=T0),
                           evse_id=evse, transaction_ref=tx)


PROFILES = [_profile(1, TX_DEFAULT, 10, evse=0), _profile(2, TX_PROFILE, 8, tx="tx1"),
            _profile(3, PRIORITY_CHARGING, 24, evse=0), _profile(4, PRIORITY_CHARGING, 20, evse=2),
            _profile(5, CHARGE_POINT_MAX, 28, evse=0)]


def test_without_priority_the_priority_profiles_give_no_limit():
    counted = profiles_for_evse(PROFILES, 1, priority=False)
    assert limit_at(counted, T0 + 10, **SITE) == 8  # the TxProfile wins as always
    assert limit_at(PROFILES, T0 + 10, **SITE) == 8  # the engine alone ignores them too


def test_with_priority_the_evses_priority_profile_replaces_its_tx_profiles_under_the_station_maximum():
    counted = profiles_for_evse(PROFILES, 1, priority=True)
    assert limit_at(counted, T0 + 10, **SITE) == 24  # not 8 (TxProfile) nor 10 (TxDefault); EVSE 2's 20 not either
    capped = profiles_for_evse([*PROFILES[:4], _profile(5, CHARGE_POINT_MAX, 16, evse=0)], 1, priority=True)
    assert limit_at(capped, T0 + 10, **SITE) == 16
    assert [p.profile_id for p in priority_profiles(PROFILES, 2)] == [3, 4]
    assert priority_profiles(PROFILES[:2], 1) == []


def test_a_priority_profile_passes_validation():
    assert validate_profile(_profile(3, PRIORITY_CHARGING, 24, evse=0), max_stack_level=10, max_periods=10,
                            allowed_units=(AMPS,)) == []


def test_an_idle_period_offers_0_a_while_in_force_and_shows_in_the_composite():
    idle = _profile(7, TX_DEFAULT, 16, periods=(ChargingSchedulePeriod(0, 16, operation_mode=IDLE),
                                                ChargingSchedulePeriod(60, 16, operation_mode="ChargingOnly")))
    assert limit_at([idle], T0 + 10, **SITE) == 0
    assert limit_at([idle], T0 + 60, **SITE) == 16
    composite = composite_schedule([idle], start=T0, duration_s=120, rate_unit=AMPS, **SITE)
    assert [(p.start_period_s, p.limit) for p in composite.periods] == [(0, 0), (60, 16)]
