"""The composite schedule: which limit applies to an EVSE at each instant.

Rules (OCPP 1.6 §3.13.4-3.13.6, 2.0.1 K08 / "Smart Charging" chapter):

* A profile applies at ``t`` when ``valid_from <= t < valid_to`` and ``t`` falls
  inside its schedule: Absolute schedules count from ``start_schedule``,
  Relative ones from the transaction start, Dynamic ones (2.1) from their last
  update (``dyn_update_time``), Recurring ones from the last daily
  or weekly recurrence of ``start_schedule`` (not before ``start_schedule``).
  A period's limit holds until the next period starts; ``duration_s`` ends
  the schedule, after which the profile gives no limit at all.
* Per purpose, the applicable profile with the highest stack level wins. For
  TxDefaultProfile a profile on the EVSE beats one on EVSE 0 at the same stack
  level (2.0.1 K01); any remaining tie takes the lower limit, the safe side.
* A TxProfile of the running transaction, where it applies, replaces the
  TxDefaultProfile; the ChargePointMaxProfile caps the result (the minimum of
  both), and the EVSE's own maximum caps everything.
* Limits are compared in the requested unit: W = A x voltage x phases, with
  the period's ``number_phases`` or else the EVSE's phase count.
* minChargingRate: an EV charging below its minimum rate is inefficient (or
  stops by itself), so where the limit falls below an applying profile's
  ``min_charging_rate`` the EVSE offers 0 (suspends) instead.

With no running transaction (``now_tx_start`` None) Relative profiles and
TxProfiles do not apply; an adapter that wants GetCompositeSchedule to show
"what a transaction starting now would get" passes ``now_tx_start=start``.
For EVSE 0 (the whole station) only ChargePointMaxProfiles count, capped by
``evse_max_A`` read as the station's maximum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agent.core.charging.smart_charging.model import (
    ABSOLUTE,
    AMPS,
    CHARGE_POINT_MAX,
    CHARGING_ONLY,
    DYNAMIC,
    IDLE,
    RECURRENCE_S,
    RECURRING,
    RELATIVE,
    STATION,
    TX_DEFAULT,
    TX_PROFILE,
    WATTS,
    ChargingProfile,
    ChargingSchedulePeriod,
)

WEEK_S = RECURRENCE_S["Weekly"]  # every recurrence divides it: the pattern repeats weekly
_EPS = 1e-9  # float slack when comparing limits or turning offsets into whole seconds


@dataclass(frozen=True)
class CompositeSchedule:
    """The piecewise-constant limit over ``[start, start + duration_s)``.

    Period starts are whole seconds from ``start`` (OCPP's resolution); each
    period's limit is the one in force at that second.
    """

    start: float
    rate_unit: str
    periods: tuple[ChargingSchedulePeriod, ...]
    duration_s: int = 0

    def limit_at(self, t: float) -> float | None:
        """The limit of the period containing ``t``; None outside the schedule."""
        if not self.start <= t < self.start + self.duration_s:
            return None
        current = None
        for period in self.periods:
            if self.start + period.start_period_s > t:
                break
            current = period.limit
        return current


@dataclass(frozen=True)
class _Site:
    """The EVSE the schedule is computed for, and its running transaction."""

    evse_id: int
    now_tx_start: float | None
    transaction_ref: str | None
    voltage_V: float
    phases: int
    evse_max_A: float


_Constraint = tuple[ChargingProfile, ChargingSchedulePeriod]


def composite_schedule(profiles: Iterable[ChargingProfile], *, evse_id: int, start: float, duration_s: int,
                       rate_unit: str, now_tx_start: float | None, voltage_V: float = 230.0, phases: int,
                       evse_max_A: float, transaction_ref: str | None = None) -> CompositeSchedule:
    """The composite schedule of ``evse_id`` over ``[start, start + duration_s)`` in ``rate_unit``.

    ``transaction_ref`` (optional) restricts TxProfiles to that transaction;
    without it every TxProfile on the EVSE counts while a transaction runs.
    """
    if duration_s < 0 or rate_unit not in (AMPS, WATTS):
        raise ValueError(f"bad composite request: duration {duration_s}, unit {rate_unit!r}")
    site = _Site(evse_id, now_tx_start, transaction_ref, voltage_V, phases, evse_max_A)
    relevant = _relevant(profiles, site)
    end = start + duration_s
    # Round each change up to the next whole second: the value reported for a
    # second is then exactly the one in force at that second.
    offsets = {0} | {math.ceil(b - start - _EPS) for b in _boundaries(relevant, site, start, end)}
    periods: list[ChargingSchedulePeriod] = []
    for offset in sorted(o for o in offsets if o < duration_s):
        value = _evaluate(relevant, start + offset, site, rate_unit)
        if not periods or periods[-1].limit != value:  # merge equal neighbours
            periods.append(ChargingSchedulePeriod(offset, value))
    return CompositeSchedule(start, rate_unit, tuple(periods), duration_s)


def limit_at(profiles: Iterable[ChargingProfile], t: float, *, evse_id: int, now_tx_start: float | None,
             voltage_V: float = 230.0, phases: int, evse_max_A: float,
             transaction_ref: str | None = None) -> float:
    """The current (A per phase) the EVSE may offer at ``t``; 0 means suspend."""
    site = _Site(evse_id, now_tx_start, transaction_ref, voltage_V, phases, evse_max_A)
    return _evaluate(_relevant(profiles, site), t, site, AMPS)


def operation_mode_at(profiles: Iterable[ChargingProfile], t: float, *, evse_id: int,
                      now_tx_start: float | None, voltage_V: float = 230.0, phases: int, evse_max_A: float,
                      transaction_ref: str | None = None) -> str:
    """The operation mode in force for the EVSE at ``t`` (OCPP 2.1): Idle when a period in force among
    the profiles that limit it says Idle (the same ones :func:`limit_at` combines), else ChargingOnly."""
    site = _Site(evse_id, now_tx_start, transaction_ref, voltage_V, phases, evse_max_A)
    return _mode(_relevant(profiles, site), t, site)


def next_change(profiles: Iterable[ChargingProfile], t: float, *, evse_id: int, now_tx_start: float | None,
                voltage_V: float = 230.0, phases: int, evse_max_A: float,
                transaction_ref: str | None = None) -> float | None:
    """The first time after ``t`` at which :func:`limit_at` or :func:`operation_mode_at` changes (an Idle
    period may give way to a ChargingOnly one at 0 A: the mode changes, not the limit); None if neither does.

    Valid only while the inputs stay the same: the caller re-plans when a
    profile is installed or cleared and when a transaction starts or ends.
    """
    site = _Site(evse_id, now_tx_start, transaction_ref, voltage_V, phases, evse_max_A)
    relevant = _relevant(profiles, site)
    current = _in_force(relevant, t, site)
    fixed = sorted({b for p in relevant for b in _fixed_boundaries(p, site.now_tx_start) if b > t})
    lo = t
    for stop in [*fixed, None]:
        found = _scan_recurrences(relevant, site, lo, stop, current)
        if found is not None or stop is None:
            return found
        if _in_force(relevant, stop, site) != current:
            return stop
        lo = stop
    return None  # unreachable: the loop returns at stop None


def _scan_recurrences(relevant: list[ChargingProfile], site: _Site, lo: float, stop: float | None,
                      current: tuple[float, str]) -> float | None:
    """The first recurrence boundary in ``(lo, stop)`` where the limit or mode leaves ``current``.

    Between two fixed boundaries only recurrences move, and they repeat weekly:
    a week without change means no change until ``stop``.
    """
    hi = lo + WEEK_S + 1 if stop is None else min(stop, lo + WEEK_S + 1)
    recurring = [p for p in relevant if p.kind == RECURRING]
    candidates = sorted({b for p in recurring for b in _recurrence_boundaries(p, lo, hi) if lo < b < hi})
    for b in candidates:
        if _in_force(relevant, b, site) != current:
            return b
    return None


# -- which profiles count, and which one wins at an instant -------------------------------------------------


def _relevant(profiles: Iterable[ChargingProfile], site: _Site) -> list[ChargingProfile]:
    """The profiles that can ever apply to this EVSE in this situation."""
    return [p for p in profiles if _concerns(p, site)]


def _concerns(profile: ChargingProfile, site: _Site) -> bool:
    """True when ``profile`` may limit ``site``'s EVSE (ignoring time)."""
    if profile.purpose == CHARGE_POINT_MAX:
        return True
    if site.evse_id == STATION:
        return False  # station total: per-EVSE profiles do not add up to a station limit
    if profile.purpose == TX_DEFAULT:
        return profile.evse_id in (STATION, site.evse_id)
    return (profile.purpose == TX_PROFILE and profile.evse_id == site.evse_id
            and site.now_tx_start is not None
            and site.transaction_ref in (None, profile.transaction_ref))


def _evaluate(relevant: list[ChargingProfile], t: float, site: _Site, unit: str) -> float:
    """The limit at ``t`` in ``unit``: EVSE max, station cap and Tx/TxDefault combined."""
    tx = _winners(relevant, TX_PROFILE, t, site) or _winners(relevant, TX_DEFAULT, t, site)
    constraints = _winners(relevant, CHARGE_POINT_MAX, t, site) + tx
    limit = min([_to_unit(site.evse_max_A, AMPS, unit, site.phases, site)]
                + [_to_unit(period.limit, p.schedule.rate_unit, unit, _phases(period, site), site)
                   for p, period in constraints])
    if any(period.operation_mode == IDLE for _, period in constraints):
        return 0.0  # 2.1 operationMode Idle: no energy transfer while that period is in force
    return _suspend_below_min_rate(limit, constraints, unit, site)


def _mode(relevant: list[ChargingProfile], t: float, site: _Site) -> str:
    """The operation mode at ``t``: Idle when a period in force among the combined constraints says so."""
    tx = _winners(relevant, TX_PROFILE, t, site) or _winners(relevant, TX_DEFAULT, t, site)
    constraints = _winners(relevant, CHARGE_POINT_MAX, t, site) + tx
    return IDLE if any(period.operation_mode == IDLE for _, period in constraints) else CHARGING_ONLY


def _in_force(relevant: list[ChargingProfile], t: float, site: _Site) -> tuple[float, str]:
    """The limit (A) and the operation mode at ``t``: what the station re-plans on when either changes."""
    return _evaluate(relevant, t, site, AMPS), _mode(relevant, t, site)


def _winners(relevant: list[ChargingProfile], purpose: str, t: float, site: _Site) -> list[_Constraint]:
    """The applying profile(s) of ``purpose`` at ``t`` with the highest precedence."""
    applying = []
    for profile in relevant:
        if profile.purpose == purpose:
            period = _active_period(profile, t, site.now_tx_start)
            if period is not None:
                applying.append((profile, period))
    if not applying:
        return []
    best = max(_precedence(p, site) for p, _ in applying)
    return [(p, period) for p, period in applying if _precedence(p, site) == best]


def _precedence(profile: ChargingProfile, site: _Site) -> tuple[int, bool]:
    """Higher stack level first; at equal level the EVSE's own profile beats EVSE 0's."""
    return profile.stack_level, profile.evse_id == site.evse_id


def _suspend_below_min_rate(limit: float, constraints: list[_Constraint], unit: str, site: _Site) -> float:
    """0 where ``limit`` is below an applying profile's minChargingRate, else ``limit``."""
    for profile, period in constraints:
        rate = profile.schedule.min_charging_rate
        if rate and limit < _to_unit(rate, profile.schedule.rate_unit, unit, _phases(period, site), site) - _EPS:
            return 0.0
    return limit


def _phases(period: ChargingSchedulePeriod, site: _Site) -> int:
    """The phase count a period's limit is meant for."""
    return period.number_phases or site.phases


def _to_unit(value: float, unit: str, wanted: str, phases: int, site: _Site) -> float:
    """``value`` from ``unit`` to ``wanted`` (A per phase <-> W total)."""
    if unit == wanted:
        return value
    watts_per_amp = site.voltage_V * phases
    return value * watts_per_amp if wanted == WATTS else value / watts_per_amp


# -- one profile in time ------------------------------------------------------------------------------------


def _active_period(profile: ChargingProfile, t: float, tx_start: float | None) -> ChargingSchedulePeriod | None:
    """The period of ``profile`` in force at ``t``, or None when the profile gives no limit then."""
    if profile.valid_from is not None and t < profile.valid_from:
        return None
    if profile.valid_to is not None and t >= profile.valid_to:
        return None
    anchor = _anchor(profile, t, tx_start)
    if anchor is None or t < anchor:
        return None
    offset = t - anchor
    schedule = profile.schedule
    if schedule.duration_s is not None and offset >= schedule.duration_s:
        return None
    current = None
    for period in schedule.periods:  # few periods: a scan is as fast as bisect here
        if period.start_period_s > offset:
            break
        current = period
    return current


def _anchor(profile: ChargingProfile, t: float, tx_start: float | None) -> float | None:
    """Where the schedule's time 0 lies for instant ``t`` (None: no anchor yet)."""
    start = profile.schedule.start_schedule
    if profile.kind == RELATIVE:
        return tx_start
    if profile.kind == DYNAMIC:  # 2.1 K28: counts from its last update, so a duration is how long one holds
        return profile.dyn_update_time if profile.dyn_update_time is not None else t
    if profile.kind == RECURRING and start is not None and profile.recurrency in RECURRENCE_S:
        length = RECURRENCE_S[profile.recurrency]
        return start + max(0, math.floor((t - start) / length)) * length
    return start if profile.kind == ABSOLUTE else None


def _boundaries(relevant: list[ChargingProfile], site: _Site, lo: float, hi: float) -> Iterator[float]:
    """Every instant in ``(lo, hi)`` at which some relevant profile may change its limit."""
    for profile in relevant:
        for b in _fixed_boundaries(profile, site.now_tx_start):
            if lo < b < hi:
                yield b
        if profile.kind == RECURRING:
            yield from (b for b in _recurrence_boundaries(profile, lo, hi) if lo < b < hi)


def _fixed_boundaries(profile: ChargingProfile, tx_start: float | None) -> Iterator[float]:
    """The instants where ``profile`` may change that do not repeat."""
    yield from (b for b in (profile.valid_from, profile.valid_to) if b is not None)
    if profile.kind == RECURRING:
        if profile.schedule.start_schedule is not None:
            yield profile.schedule.start_schedule  # the first recurrence begins
        return
    anchor = {RELATIVE: tx_start, DYNAMIC: profile.dyn_update_time}.get(profile.kind, profile.schedule.start_schedule)
    if anchor is not None:
        yield from _schedule_boundaries(profile, anchor)


def _recurrence_boundaries(profile: ChargingProfile, lo: float, hi: float) -> Iterator[float]:
    """Period and end instants of every recurrence of ``profile`` that overlaps ``[lo, hi)``."""
    start = profile.schedule.start_schedule
    length = RECURRENCE_S.get(profile.recurrency)
    if start is None or length is None:
        return
    k = max(0, math.floor((lo - start) / length))
    while start + k * length < hi:
        yield from _schedule_boundaries(profile, start + k * length)
        k += 1


def _schedule_boundaries(profile: ChargingProfile, anchor: float) -> Iterator[float]:
    """Period starts and the end of ``profile``'s schedule when it starts at ``anchor``."""
    yield from (anchor + p.start_period_s for p in profile.schedule.periods)
    if profile.schedule.duration_s is not None:
        yield anchor + profile.schedule.duration_s
