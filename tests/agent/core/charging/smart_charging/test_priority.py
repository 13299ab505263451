"""OCPP 2.1 in the version-neutral engine (pure, no I/O): PriorityCharging profiles stand in for the Tx profiles
of an EVSE only while priority charging is active for its transaction, the station maximum still caps them;
an Idle period offers 0 A while it is in force. And the station's side (StationPriorityCharging): the
UsePriorityCharging statuses, the state kept across a restart, and the end it tells the CSMS of."""

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
from agent.core.charging.station_priority import StationPriorityCharging

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


class _Store(dict):
    def put(self, key, value):
        self[key] = value


class _Station(StationPriorityCharging):
    """The mixin over the few station parts it uses: EVSE 1 runs transaction tx1."""

    def __init__(self, store, profiles):
        tx = type("Tx", (), {"ref": "tx1"})()
        self.evses = {1: type("Evse", (), {"transaction": tx})(), 2: type("Evse", (), {"transaction": None})()}
        self.store, self.profiles, self.applied, self.told = store, profiles, 0, []
        self.port = self

    def apply_limits(self):
        self.applied += 1

    def priority_charging_changed(self, ref, active):
        self.told.append((ref, active))


def test_the_station_answers_use_priority_charging_keeps_it_across_a_restart_and_ends_it_with_its_profile():
    store, profiles = _Store(), [PROFILES[0]]
    station = _Station(store, profiles)
    assert station.set_priority_charging("tx1", True) == "NoProfile"
    assert station.set_priority_charging("tx9", True) == "Rejected"
    profiles.append(PROFILES[2])
    assert station.set_priority_charging("tx1", True) == "Accepted" and station.applied == 1
    assert [p.profile_id for p in station.limit_profiles(1, profiles)] == [3]  # as a TxDefault of EVSE 1
    restarted = _Station(store, profiles)  # e.g. Reset ImmediateAndResume: the transaction goes on
    assert restarted.priority_charging("tx1")
    profiles.remove(PROFILES[2])  # ClearChargingProfile of the profile in use
    restarted.check_priority_charging()
    assert not restarted.priority_charging("tx1") and restarted.told == [("tx1", False)]
    assert _Station(store, profiles).priority_charging("tx1") is False
