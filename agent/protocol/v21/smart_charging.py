"""OCPP 2.1 block K over the 2.0.1 handlers: what 2.1 adds to a charging profile and this station does not do
(yet) is refused with the reason, never stored and silently not honoured.

2.1 widens ChargingProfileType: a Dynamic kind, the PriorityCharging and LocalGeneration
purposes, per-phase limits, V2X setpoints and discharge limits, operation modes, ISO 15118-20
price schedules, offline validity. A profile that uses none of them is a 2.0.1 profile and
goes through the 2.0.1 flow unchanged.
"""

from __future__ import annotations

import logging

from ocpp.routing import on
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.protocol.common.smart_charging import ProfileRefused
from agent.protocol.v201.smart_charging import SmartChargingHandlers201

log = logging.getLogger("agent.ocpp21")

NOT_YET = "not yet supported by this station"
NO_V2X = "needs bidirectional (V2X) charging, which this AC station does not do"
NO_15118 = "needs ISO 15118-20, which this station does not have"

#: Purposes 2.1 adds, and why they are refused.
#: (PriorityCharging is honoured: ``priority_charging``.) LocalGeneration declares power from local generation
#: that the external constraints may be raised by; this station's one external constraint is a fixed cap
#: contact (hal ExternalLimit) and it measures no local generation, so there is nothing it could add to.
_PURPOSES = {"LocalGeneration": "LocalGeneration: this station has no local generation input, and its only external"
                                " constraint is a contact with a fixed cap that a generation profile cannot raise"}
#: Period fields 2.1 adds that carry V2X or per-phase control; any value refuses the profile.
_PERIOD_FIELDS = {
    "limit_l2": "per-phase limits (limit_L2, limit_L3): the pilot offers one current to every phase",
    "limit_l3": "per-phase limits (limit_L2, limit_L3): the pilot offers one current to every phase",
    **{name: f"{name}: {NO_V2X}" for name in (
        "discharge_limit", "discharge_limit_l2", "discharge_limit_l3", "setpoint", "setpoint_l2", "setpoint_l3",
        "setpoint_reactive", "setpoint_reactive_l2", "setpoint_reactive_l3", "v2x_baseline",
        "v2x_freq_watt_curve", "v2x_signal_watt_curve")},
}
#: Schedule and profile fields 2.1 adds whose meaning this station cannot honour (yet).
_SCHEDULE_FIELDS = {"limit_at_soc": f"limitAtSoC: {NO_15118} (the EV's state of charge)",
                    "absolute_price_schedule": f"absolutePriceSchedule: {NO_15118}",
                    "price_level_schedule": f"priceLevelSchedule: {NO_15118}",
                    "use_local_time": f"useLocalTime: {NOT_YET}", "randomized_delay": f"randomizedDelay: {NOT_YET}"}
_PROFILE_FIELDS = {"max_offline_duration": f"maxOfflineDuration: {NOT_YET}",
                   "invalid_after_offline_duration": f"invalidAfterOfflineDuration: {NOT_YET}",
                   "price_schedule_signature": f"priceScheduleSignature: {NO_15118}"}


class Unsupported21(ProfileRefused, ValueError):
    """A profile using 2.1 features this station does not offer: Rejected by SetChargingProfile (a ValueError
    there) and by a remote start (a ProfileRefused there)."""


def unsupported_21(profile: dict) -> str | None:
    """Why this station cannot honour a 2.1 ChargingProfileType (snake_case dict), or None for one it can."""
    problem = _PURPOSES.get(profile.get("charging_profile_purpose"))
    problem = problem or _first(profile, _PROFILE_FIELDS)
    for schedule in profile.get("charging_schedule") or []:
        problem = problem or _first(schedule, _SCHEDULE_FIELDS)
        for period in schedule.get("charging_schedule_period") or []:
            problem = problem or _period_problem(period)
    return problem


def _period_problem(period: dict) -> str | None:
    if period.get("limit") is None:
        return "a period without a limit (2.1 allows setpoints instead): only limits are supported"
    mode = period.get("operation_mode")
    if mode not in (None, "ChargingOnly", "Idle"):  # Idle: no energy transfer (0 A) while it is in force
        return f"operationMode {mode}: {NO_V2X}"
    if period.get("preconditioning_request") or period.get("evse_sleep"):
        return f"preconditioningRequest / evseSleep: {NO_15118}"
    return _first(period, _PERIOD_FIELDS)


def unsupported_period_fields(period: dict) -> str | None:
    """Why a period (or a Dynamic profile's scheduleUpdate) sets a per-phase or V2X field this station cannot
    honour, or None."""
    return _first(period, _PERIOD_FIELDS)


def _first(data: dict, fields: dict[str, str]) -> str | None:
    """The reason for the first of ``fields`` that ``data`` sets (a false flag or zero sets nothing)."""
    return next((reason for name, reason in fields.items() if data.get(name) not in (None, False, 0)), None)


class SmartChargingHandlers21(SmartChargingHandlers201):
    """Mixed into the 2.1 adapter before the 2.0.1 handlers it refines."""

    def profile_from_message(self, data: dict, *, evse_id: int, transaction_ref: str | None):
        """The 2.0.1 conversion, for a profile that uses nothing of 2.1 this station lacks (else Unsupported21)."""
        problem = unsupported_21(data)
        if problem is not None:
            raise Unsupported21(problem)
        return super().profile_from_message(data, evse_id=evse_id, transaction_ref=transaction_ref)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict, **_):
        """SetChargingProfile: Rejected with the reason for what 2.1 adds and this station does not do."""
        problem = unsupported_21(charging_profile)
        if problem is None:
            return super().on_set_charging_profile(evse_id=evse_id, charging_profile=charging_profile)
        log.warning("SetChargingProfile %s refused: %s", charging_profile.get("id"), problem)
        return call_result.SetChargingProfile(
            status="Rejected", status_info={"reason_code": "UnsupportedParam", "additional_info": problem[:1024]})

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict | None = None, **_):
        """ClearChargingProfile: a purpose only 2.1 has matches nothing here (never every profile)."""
        if (charging_profile_criteria or {}).get("charging_profile_purpose") in _PURPOSES:
            return call_result.ClearChargingProfile(status="Unknown")
        return super().on_clear_charging_profile(charging_profile_id=charging_profile_id,
                                                 charging_profile_criteria=charging_profile_criteria)

    def _matching_profiles(self, evse_id: int | None, criteria: dict):
        """GetChargingProfiles: a purpose only 2.1 has matches nothing here (never every profile)."""
        if criteria.get("charging_profile_purpose") in _PURPOSES:
            return []
        return super()._matching_profiles(evse_id, criteria)
