"""The version-neutral smart-charging data model and its JSON form.

The names follow OCPP 1.6 §3.13 / 2.0.1 block K with units in the field names.
Times are unix seconds (floats) so the engine never parses dates; the protocol
adapters convert the ``ocpp`` library's ISO 8601 strings on the way in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Purposes as OCPP 1.6 spells them. 2.0.1's ChargingStationMaxProfile and
# ChargingStationExternalConstraints are both station-wide caps, so the 2.0.1
# adapter maps them onto CHARGE_POINT_MAX.
CHARGE_POINT_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX_PROFILE = "TxProfile"
# OCPP 2.1: replaces TxProfile / TxDefaultProfile of a transaction while priority charging is active for it
# (see :mod:`.priority`); stored, but no limit otherwise.
PRIORITY_CHARGING = "PriorityCharging"
PURPOSES = (CHARGE_POINT_MAX, TX_DEFAULT, TX_PROFILE, PRIORITY_CHARGING)

# OCPP 2.1 operationMode of a period: Idle means no energy transfer while the period is in force.
IDLE = "Idle"
CHARGING_ONLY = "ChargingOnly"  # the default mode: a period without operationMode charges

ABSOLUTE = "Absolute"
RECURRING = "Recurring"
RELATIVE = "Relative"
DYNAMIC = "Dynamic"  # 2.1: one period whose limit the CSMS updates (agent.core.charging.smart_charging.dynamic)
KINDS = (ABSOLUTE, RECURRING, RELATIVE, DYNAMIC)

DAILY = "Daily"
WEEKLY = "Weekly"
# A recurrence is a fixed number of seconds: OCPP dateTimes are UTC, so a
# "day" here never stretches or shrinks with daylight-saving time.
RECURRENCE_S = {DAILY: 86_400, WEEKLY: 7 * 86_400}

AMPS = "A"
WATTS = "W"
UNITS = (AMPS, WATTS)

STATION = 0  # evse_id of the whole station (1.6 connectorId 0)


@dataclass(frozen=True)
class ChargingSchedulePeriod:
    """A limit that holds from ``start_period_s`` (relative to the schedule start) until the next period."""

    start_period_s: int
    limit: float  # in the schedule's rate unit
    number_phases: int | None = None  # None: the EVSE's own phase count
    operation_mode: str | None = None  # OCPP 2.1; None or ChargingOnly: charge; IDLE: offer 0


@dataclass(frozen=True)
class ChargingSchedule:
    """A list of periods in one rate unit; ``duration_s`` (if set) ends the schedule."""

    rate_unit: str  # AMPS or WATTS
    periods: tuple[ChargingSchedulePeriod, ...]
    duration_s: int | None = None
    start_schedule: float | None = None  # unix time; Absolute and Recurring profiles only
    min_charging_rate: float | None = None  # in rate_unit; below it the EV is better suspended
    schedule_id: int | None = None  # 2.0.1 chargingSchedule.id as the CSMS set it (1.6 schedules have none)


@dataclass(frozen=True)
class ChargingProfile:
    """One charging profile as the CSMS installed it (SetChargingProfile / TxProfile of a remote start)."""

    profile_id: int
    stack_level: int
    purpose: str  # one of PURPOSES
    kind: str  # one of KINDS
    schedule: ChargingSchedule
    recurrency: str | None = None  # DAILY or WEEKLY, Recurring profiles only
    valid_from: float | None = None
    valid_to: float | None = None
    transaction_ref: str | None = None  # the core's transaction ref, TxProfile only
    evse_id: int = STATION
    dyn_update_interval_s: int | None = None  # Dynamic only: ask the CSMS for an update this often (None/0: never)
    dyn_update_time: float | None = None  # Dynamic only: when its limit was last updated (unix time)


def profile_to_json(profile: ChargingProfile) -> dict[str, Any]:
    """The profile as plain JSON-able data (for the state store)."""
    data = asdict(profile)
    data["schedule"]["periods"] = list(data["schedule"]["periods"])
    return data


def profile_from_json(data: dict[str, Any]) -> ChargingProfile:
    """Rebuild a profile from :func:`profile_to_json`'s output."""
    schedule = dict(data["schedule"])
    schedule["periods"] = tuple(ChargingSchedulePeriod(**p) for p in schedule["periods"])
    return ChargingProfile(**{**data, "schedule": ChargingSchedule(**schedule)})
