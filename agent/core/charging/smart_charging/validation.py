"""Checks a charging profile against the OCPP rules before it is installed.

The adapter answers SetChargingProfile with Rejected when :func:`validate_profile`
returns any problem. Whether a TxProfile's transaction is actually running is
the adapter's check (it knows the EVSEs); here we only require that it names one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from agent.core.charging.smart_charging.dynamic import dynamic_problems
from agent.core.charging.smart_charging.model import (
    ABSOLUTE,
    CHARGE_POINT_MAX,
    KINDS,
    PURPOSES,
    RECURRENCE_S,
    RECURRING,
    STATION,
    TX_PROFILE,
    UNITS,
    ChargingProfile,
    ChargingSchedule,
)


def validate_profile(profile: ChargingProfile, *, max_stack_level: int, max_periods: int,
                     allowed_units: Iterable[str]) -> list[str]:
    """Every rule ``profile`` breaks, in words; an empty list means it may be installed.

    ``max_stack_level`` is 1.6 ChargeProfileMaxStackLevel / 2.0.1 SmartChargingCtrlr.ProfileStackLevel,
    ``max_periods`` ChargingScheduleMaxPeriods / PeriodsPerSchedule, ``allowed_units`` the
    ChargingScheduleAllowedChargingRateUnit / RateUnit values translated to "A" / "W".
    """
    return [*_profile_problems(profile, max_stack_level),
            *_schedule_problems(profile.schedule, max_periods, set(allowed_units))]


def _profile_problems(profile: ChargingProfile, max_stack_level: int) -> list[str]:
    """Rules on the profile's own fields: purpose, kind, stack level, EVSE, validity."""
    problems = []
    if profile.purpose not in PURPOSES:
        problems.append(f"unknown purpose {profile.purpose!r}")
    if not 0 <= profile.stack_level <= max_stack_level:
        problems.append(f"stack level {profile.stack_level} outside 0..{max_stack_level}")
    if profile.evse_id < 0:
        problems.append(f"EVSE id {profile.evse_id} is negative")
    if profile.purpose == CHARGE_POINT_MAX and profile.evse_id != STATION:
        problems.append("ChargePointMaxProfile may only be set on EVSE 0")
    if profile.purpose == TX_PROFILE:
        problems += _tx_profile_problems(profile)
    if (profile.valid_from is not None and profile.valid_to is not None
            and profile.valid_to <= profile.valid_from):
        problems.append("validTo is not after validFrom")
    return problems + _kind_problems(profile)


def _tx_profile_problems(profile: ChargingProfile) -> list[str]:
    """A TxProfile belongs to one transaction, which runs on one EVSE (never on the station)."""
    problems = []
    if profile.transaction_ref is None:
        problems.append("TxProfile without a transaction")
    if profile.evse_id == STATION:
        problems.append("TxProfile on EVSE 0")
    return problems


def _kind_problems(profile: ChargingProfile) -> list[str]:
    """Kind, recurrency and startSchedule must agree (2.0.1 K01.FR.40/41 spell this out)."""
    problems = []
    if profile.kind not in KINDS:
        return [f"unknown kind {profile.kind!r}"]
    if profile.kind == RECURRING:
        if profile.recurrency not in RECURRENCE_S:
            problems.append(f"Recurring profile needs recurrency Daily or Weekly, got {profile.recurrency!r}")
    elif profile.recurrency is not None:
        problems.append(f"recurrency given on a {profile.kind} profile")
    # Absolute and Recurring periods count from startSchedule: without it they have no anchor.
    if profile.kind in (ABSOLUTE, RECURRING) and profile.schedule.start_schedule is None:
        problems.append(f"{profile.kind} profile needs startSchedule")
    return problems + dynamic_problems(profile)


def _schedule_problems(schedule: ChargingSchedule, max_periods: int, allowed_units: set[str]) -> list[str]:
    """Rules on the schedule: unit, period count and order, non-negative numbers."""
    problems = []
    if schedule.rate_unit not in UNITS:
        problems.append(f"unknown rate unit {schedule.rate_unit!r}")
    elif schedule.rate_unit not in allowed_units:
        problems.append(f"rate unit {schedule.rate_unit} not allowed")
    if not schedule.periods:
        problems.append("schedule has no periods")
    elif len(schedule.periods) > max_periods:
        problems.append(f"{len(schedule.periods)} periods, at most {max_periods} allowed")
    if schedule.duration_s is not None and schedule.duration_s < 0:
        problems.append("negative duration")
    if schedule.min_charging_rate is not None and schedule.min_charging_rate < 0:
        problems.append("negative minChargingRate")
    return problems + _period_problems(schedule)


def _period_problems(schedule: ChargingSchedule) -> list[str]:
    """Periods start at 0, strictly increase, and carry usable limits and phase counts."""
    problems = []
    starts = [p.start_period_s for p in schedule.periods]
    if starts and starts[0] != 0:
        problems.append("first period does not start at 0")
    if any(b <= a for a, b in zip(starts, starts[1:])):
        problems.append("period starts are not strictly increasing")
    for i, period in enumerate(schedule.periods):
        if not (math.isfinite(period.limit) and period.limit >= 0):  # also rejects NaN
            problems.append(f"period {i}: limit {period.limit} is not a number >= 0")
        if period.number_phases is not None and period.number_phases not in (1, 2, 3):
            problems.append(f"period {i}: numberPhases {period.number_phases} not in 1..3")
    return problems
