"""Dynamic charging profiles (OCPP 2.1 chargingProfileKind Dynamic), in the core's words.

A Dynamic profile has one schedule period whose limit is not planned ahead: the CSMS sets it when it
installs the profile and changes it later, either pushing an update (UpdateDynamicSchedule) or answering
the station, which asks every ``dyn_update_interval_s`` seconds after the last update it received
(PullDynamicScheduleUpdate). Between updates the last limit holds. Otherwise the profile is like any
other of its purpose: stacked, capped and shown in the composite schedule by :mod:`.engine`, persisted
by :mod:`.store`.

``dyn_update_time`` does two jobs (2.1 K28): the station sets it when it installs the profile and at
every update, and the one period counts from it. So a schedule ``duration`` is how long one update may
be trusted: a profile not updated within it stops applying (the next profile of the stack takes over,
no stale limit is kept while the CSMS is silent) until an update revives it. A pull the CSMS refuses,
or answers without an update, is no update. The station pulls ``dyn_update_interval_s`` after the last
update, or after its last pull, whichever is later (no burst of pulls while the CSMS refuses).

What the station can change is the limit only (an AC pilot offers one current to every phase); the
protocol adapter refuses the rest of 2.1's update (per-phase limits, setpoints, discharge) with its
reason before it gets here.
"""

from __future__ import annotations

import math
from dataclasses import replace

from agent.core.charging.smart_charging.model import DYNAMIC, ChargingProfile, ChargingSchedulePeriod


def dynamic_problems(profile: ChargingProfile) -> list[str]:
    """The rules only a Dynamic profile has (none for another kind)."""
    if profile.kind != DYNAMIC:
        return []
    problems = []
    if len(profile.schedule.periods) != 1:
        problems.append("a Dynamic profile has exactly one period (the one whose limit is updated)")
    if profile.dyn_update_interval_s is not None and profile.dyn_update_interval_s < 0:
        problems.append("negative dynUpdateInterval")
    return problems


def update_problem(profile: ChargingProfile | None, *, profile_id: int, limit: float | None) -> str | None:
    """Why ``profile`` (the installed one with ``profile_id``, or None) cannot take ``limit``; None if it can."""
    if profile is None:
        return f"no charging profile {profile_id} installed"
    if profile.kind != DYNAMIC:
        return f"charging profile {profile_id} is {profile.kind}, not Dynamic"
    if limit is None:
        return "an update without a limit: only the limit can be updated on this station"
    if not (math.isfinite(limit) and limit >= 0):
        return f"limit {limit}: only a limit >= 0 (no discharging) is supported"
    return None


def update_stamp(now: float) -> float:
    """``now`` as a dynUpdateTime: whole seconds (OCPP's resolution), so that the composite schedule, which
    starts on a whole second, already shows an update made during that second."""
    return float(math.floor(now))


def with_limit(profile: ChargingProfile, *, limit: float, now: float) -> ChargingProfile:
    """``profile`` with its one period's limit updated at ``now`` (dynUpdateTime: when the update came)."""
    period = profile.schedule.periods[0]
    schedule = replace(profile.schedule, periods=(ChargingSchedulePeriod(period.start_period_s, float(limit),
                                                                         period.number_phases),))
    return replace(profile, schedule=schedule, dyn_update_time=update_stamp(now))


def next_pull(profile: ChargingProfile, *, last_update: float) -> float | None:
    """When the station asks the CSMS for an update of ``profile``: ``dyn_update_interval_s`` after
    ``last_update`` (its last update or installation, or the last pull if later), unless the profile has
    no interval, is not Dynamic, or has expired by then (None)."""
    interval = profile.dyn_update_interval_s
    if profile.kind != DYNAMIC or not interval:
        return None
    due = last_update + interval
    if profile.valid_to is not None and due >= profile.valid_to:
        return None
    return due
