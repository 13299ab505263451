"""Dynamic charging profiles in the core (pure, plus the store over real SQLite): their one period in the
composite schedule, their own validation rules, an update of the limit, and when the station pulls."""

from dataclasses import replace

from agent.core.charging.smart_charging import (
    ABSOLUTE,
    AMPS,
    CHARGE_POINT_MAX,
    STATION,
    TX_DEFAULT,
    ChargingProfile,
    ChargingSchedule,
    ChargingSchedulePeriod,
    ProfileStore,
    composite_schedule,
    limit_at,
    next_change,
    validate_profile,
)
from agent.core.charging.smart_charging.dynamic import next_pull, update_problem, with_limit
from agent.core.charging.smart_charging.model import DYNAMIC
from agent.runtime.store import StateStore

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z
SITE = {"evse_id": 1, "now_tx_start": None, "phases": 3, "evse_max_A": 32.0}


def dynamic(pid=7, limit=16.0, *, stack=1, updated=T0, duration=None, interval=None, valid_to=None,
            periods=None) -> ChargingProfile:
    schedule = ChargingSchedule(AMPS, periods or (ChargingSchedulePeriod(0, limit),), duration, None)
    return ChargingProfile(pid, stack, TX_DEFAULT, DYNAMIC, schedule, evse_id=1, dyn_update_interval_s=interval,
                           dyn_update_time=updated, valid_to=valid_to)


def static(pid, limit, *, purpose=TX_DEFAULT, stack=0, evse=1) -> ChargingProfile:
    schedule = ChargingSchedule(AMPS, (ChargingSchedulePeriod(0, limit),), None, T0 - 3600)
    return ChargingProfile(pid, stack, purpose, ABSOLUTE, schedule, evse_id=evse)


def test_dynamic_limit_holds_from_now_on_and_stacks_like_any_profile():
    profiles = [dynamic(limit=16.0), static(1, 20.0)]  # the Dynamic one is higher on the stack
    assert limit_at(profiles, T0, **SITE) == 16.0
    assert next_change(profiles, T0, **SITE) is None  # nothing planned: only an update changes it
    composite = composite_schedule(profiles, start=T0, duration_s=600, rate_unit=AMPS, **SITE)
    assert [(p.start_period_s, p.limit) for p in composite.periods] == [(0, 16.0)]
    capped = profiles + [static(2, 10.0, purpose=CHARGE_POINT_MAX, evse=STATION)]
    assert limit_at(capped, T0, **SITE) == 10.0  # the station maximum caps it


def test_a_dynamic_duration_is_how_long_one_update_holds():
    profiles = [dynamic(limit=16.0, duration=300), static(1, 20.0)]
    assert limit_at(profiles, T0 + 299, **SITE) == 16.0
    assert limit_at(profiles, T0 + 300, **SITE) == 20.0  # not updated in time: the next profile takes over
    assert next_change(profiles, T0, **SITE) == T0 + 300  # the station re-plans then (no polling)
    revived = [with_limit(profiles[0], limit=12.0, now=T0 + 400), profiles[1]]
    assert limit_at(revived, T0 + 400, **SITE) == 12.0 and limit_at(revived, T0 + 700, **SITE) == 20.0


def test_dynamic_profile_rules():
    rules = {"max_stack_level": 10, "max_periods": 24, "allowed_units": (AMPS,)}
    assert validate_profile(dynamic(), **rules) == []
    two = dynamic(periods=(ChargingSchedulePeriod(0, 16.0), ChargingSchedulePeriod(60, 8.0)))
    assert any("exactly one period" in p for p in validate_profile(two, **rules))
    assert any("dynUpdateInterval" in p for p in validate_profile(dynamic(interval=-1), **rules))


def test_an_update_changes_the_limit_and_says_when():
    updated = with_limit(dynamic(limit=16.0), limit=6.5, now=T0 + 5)
    assert updated.schedule.periods == (ChargingSchedulePeriod(0, 6.5),) and updated.dyn_update_time == T0 + 5
    assert update_problem(updated, profile_id=7, limit=8.0) is None
    assert "no charging profile 9" in update_problem(None, profile_id=9, limit=8.0)
    assert "not Dynamic" in update_problem(static(1, 20.0), profile_id=1, limit=8.0)
    assert "only the limit" in update_problem(updated, profile_id=7, limit=None)
    assert "no discharging" in update_problem(updated, profile_id=7, limit=-3.0)


def test_the_station_pulls_an_interval_after_the_last_update_until_the_profile_expires():
    assert next_pull(dynamic(interval=30), last_update=T0) == T0 + 30
    assert next_pull(dynamic(interval=None), last_update=T0) is None
    assert next_pull(dynamic(interval=0), last_update=T0) is None
    assert next_pull(dynamic(interval=30, valid_to=T0 + 20), last_update=T0) is None
    assert next_pull(replace(static(1, 20.0), dyn_update_interval_s=30), last_update=T0) is None


def test_an_updated_limit_is_persisted(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        profiles = ProfileStore(store)
        profiles.install(dynamic(interval=15))
        profiles.update(with_limit(next(iter(profiles)), limit=9.0, now=T0))
    with StateStore(tmp_path / "state.sqlite") as store:
        [kept] = ProfileStore(store)
    assert kept.kind == DYNAMIC and kept.schedule.periods[0].limit == 9.0
    assert kept.dyn_update_interval_s == 15 and kept.dyn_update_time == T0
