"""OCPP 1.6 Smart Charging profile: SetChargingProfile, ClearChargingProfile, GetCompositeSchedule,
over the core's one composite-schedule engine."""

from __future__ import annotations

import logging
from datetime import datetime

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from agent.runtime.clock import format_iso
from agent.core.charging.smart_charging import (
    AMPS,
    TX_PROFILE,
    WATTS,
    ChargingProfile,
    ChargingSchedule,
    ChargingSchedulePeriod,
)

log = logging.getLogger("agent.ocpp16")

_UNITS = {"A": AMPS, "W": WATTS}


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


def profile_from_16(data: dict, *, evse_id: int, transaction_ref: str | None) -> ChargingProfile:
    """A 1.6 csChargingProfiles (snake_case dict from the library) as the core's ChargingProfile."""
    schedule = data["charging_schedule"]
    periods = tuple(ChargingSchedulePeriod(p["start_period"], float(p["limit"]), p.get("number_phases"))
                    for p in schedule["charging_schedule_period"])
    return ChargingProfile(
        profile_id=data["charging_profile_id"], stack_level=data["stack_level"],
        purpose=data["charging_profile_purpose"], kind=data["charging_profile_kind"],
        schedule=ChargingSchedule(_UNITS[schedule["charging_rate_unit"]], periods, schedule.get("duration"),
                                  _ts(schedule.get("start_schedule")),
                                  float(schedule["min_charging_rate"]) if schedule.get("min_charging_rate") else None),
        recurrency=data.get("recurrency_kind"), valid_from=_ts(data.get("valid_from")),
        valid_to=_ts(data.get("valid_to")), transaction_ref=transaction_ref, evse_id=evse_id)


class SmartChargingHandlers16:
    """Mixed into the 1.6 adapter."""

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **_):
        """SetChargingProfile: validated, stored, applied to the offered current at once."""
        if connector_id != 0 and connector_id not in self.core.station.evses:
            return call_result.SetChargingProfile(status="Rejected")
        ref = None
        if cs_charging_profiles["charging_profile_purpose"] == TX_PROFILE:
            transaction_id = cs_charging_profiles.get("transaction_id")
            ref = self.core.station.transaction_for_profile(
                connector_id, remote_id=str(transaction_id) if transaction_id is not None else None)
            if ref is None:
                return call_result.SetChargingProfile(status="Rejected")  # a TxProfile needs its transaction
        try:
            profile = profile_from_16(cs_charging_profiles, evse_id=connector_id, transaction_ref=ref)
        except (KeyError, ValueError) as exc:
            log.warning("SetChargingProfile refused: %s", exc)
            return call_result.SetChargingProfile(status="Rejected")
        problems = self.core.station.profile_problems(profile)
        if problems:
            log.warning("SetChargingProfile %d refused: %s", profile.profile_id, "; ".join(problems))
            return call_result.SetChargingProfile(status="Rejected")
        self.core.station.install_profile(profile)
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, id: int | None = None, connector_id: int | None = None,
                                  charging_profile_purpose: str | None = None, stack_level: int | None = None, **_):
        """ClearChargingProfile by id or by filter: Accepted if anything matched, else Unknown."""
        cleared = self.core.station.clear_profiles(profile_id=id, evse_id=connector_id,
                                                   purpose=charging_profile_purpose, stack_level=stack_level)
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, charging_rate_unit: str | None = None,
                                  **_):
        """GetCompositeSchedule from now over ``duration`` seconds."""
        unit = _UNITS.get(charging_rate_unit or "A", AMPS)
        composite = self.core.station.composite(connector_id, duration_s=duration, rate_unit=unit)
        if composite is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        periods = [{"start_period": p.start_period_s, "limit": round(p.limit, 1)} for p in composite.periods]
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id, schedule_start=format_iso(composite.start),
            charging_schedule={"duration": duration, "start_schedule": format_iso(composite.start),
                               "charging_rate_unit": "W" if unit == WATTS else "A",
                               "charging_schedule_period": periods})
