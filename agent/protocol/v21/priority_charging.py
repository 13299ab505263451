"""OCPP 2.1 priority charging, operation modes and external constraints (block K) over the 2.0.1 handlers.

* PriorityCharging profiles: SetChargingProfile installs them (on EVSE 0 or one EVSE); they give no
  limit until UsePriorityCharging activates priority charging for a transaction, and then take the
  place of its TxProfile / TxDefaultProfile (the core's ``StationPriorityCharging``). Statuses:
  Accepted, Rejected (the transaction does not run here), NoProfile (no PriorityCharging profile for
  its EVSE). Cleared, and reported by GetChargingProfiles, under their own purpose.
* NotifyPriorityCharging: this station has no local input that switches priority charging (no boost
  button, no local app: a home or semi-public wallbox's hardware), so it never reports a local
  activation; it sends ``activated: false`` when it ends priority charging by itself, because the
  PriorityCharging profile the transaction used was cleared.
* operationMode: ChargingOnly and Idle periods are kept as set (Idle offers 0 A while in force, in the
  core's engine) and reported back; every V2X mode is refused (``smart_charging``).
* ChargingStationExternalConstraints: the external limit input (``hal.roles.ExternalLimit``) caps the
  composite schedule as in 2.0.1; 2.1 also lets GetChargingProfiles see it, as a profile with a negative
  id (the schema's convention for a profile from an external actor) and the input's chargingLimitSource.
"""

from __future__ import annotations

import dataclasses
import logging

from ocpp.routing import after, on
from ocpp.v21 import call, call_result
from ocpp.v21.enums import Action

from agent.core.charging.smart_charging.model import PRIORITY_CHARGING, TX_DEFAULT
from agent.runtime.clock import format_iso

log = logging.getLogger("agent.ocpp21")

#: What this mixin sends on its own (read by `ocpp-agent pics` through the adapter's ``sends``).
PRIORITY_SENDS = frozenset({"NotifyPriorityCharging"})
PRIORITY = "PriorityCharging"
EXTERNAL = "ChargingStationExternalConstraints"
#: The id the external limit input's profile is reported with (negative: from an external actor, not the CSMS).
EXTERNAL_PROFILE_ID = -1
CSO = "CSO"  # chargingLimitSource of the profiles the CSMS set


def with_operation_modes(profile, data: dict):
    """``profile`` with the operationMode of each period of the message's first schedule (the one used)."""
    periods = (data.get("charging_schedule") or [{}])[0].get("charging_schedule_period") or []
    modes = [p.get("operation_mode") for p in periods]
    if not any(modes) or len(modes) != len(profile.schedule.periods):
        return profile
    new_periods = tuple(dataclasses.replace(p, operation_mode=m) for p, m in zip(profile.schedule.periods, modes))
    return dataclasses.replace(profile, schedule=dataclasses.replace(profile.schedule, periods=new_periods))


def external_profile(limit, *, now: float) -> dict:
    """The external limit input in force as a 2.1 ChargingProfileType (snake_case): one period, in A per phase,
    from ``now`` (the report) with no end; it holds until the input is released."""
    schedule = {"id": 0, "charging_rate_unit": "A", "start_schedule": format_iso(now),
                "charging_schedule_period": [{"start_period": 0, "limit": float(limit.limit_A)}]}
    return {"id": EXTERNAL_PROFILE_ID, "stack_level": 0, "charging_profile_purpose": EXTERNAL,
            "charging_profile_kind": "Absolute", "charging_schedule": [schedule]}


class PriorityChargingHandlers21:
    """Mixed into the 2.1 adapter before the smart-charging handlers it extends."""

    # ------------------------------------------------------------ the profile, both ways

    def profile_from_message(self, data: dict, *, evse_id: int, transaction_ref: str | None):
        """The 2.1 conversion, for a PriorityCharging profile too, keeping each period's operationMode."""
        priority = data.get("charging_profile_purpose") == PRIORITY
        # Read like a TxDefaultProfile (same fields, same rules), then given its own purpose.
        read = {**data, "charging_profile_purpose": TX_DEFAULT} if priority else data
        profile = super().profile_from_message(read, evse_id=evse_id, transaction_ref=transaction_ref)
        if priority:
            profile = dataclasses.replace(profile, purpose=PRIORITY_CHARGING)
        return with_operation_modes(profile, data)

    def profile_to_message(self, profile) -> dict:
        """As in 2.0.1, with the PriorityCharging purpose and each period's operationMode."""
        priority = profile.purpose == PRIORITY_CHARGING
        out = super().profile_to_message(dataclasses.replace(profile, purpose=TX_DEFAULT) if priority else profile)
        if priority:
            out["charging_profile_purpose"] = PRIORITY
        for period, word in zip(profile.schedule.periods, out["charging_schedule"][0]["charging_schedule_period"]):
            if period.operation_mode:
                word["operation_mode"] = period.operation_mode
        return out

    # ------------------------------------------------------------ priority charging

    @on(Action.use_priority_charging)
    def on_use_priority_charging(self, transaction_id: str, activate: bool, **_):
        """UsePriorityCharging: the transaction's PriorityCharging profile replaces its Tx profiles (or stops)."""
        status = self.core.station.set_priority_charging(transaction_id, activate)
        if status == "Accepted":
            return call_result.UsePriorityCharging(status=status)
        why = ("the transaction does not run on this station" if status == "Rejected"
               else "no PriorityCharging profile is installed for the transaction's EVSE")
        return call_result.UsePriorityCharging(status=status, status_info={
            "reason_code": "TxNotFound" if status == "Rejected" else "NoProfile", "additional_info": why})

    def priority_charging_changed(self, transaction_ref: str, active: bool) -> None:
        """CsmsPort (optional): the station switched priority charging by itself (NotifyPriorityCharging).
        Not queued: a CSMS that missed it learns the state from the next UsePriorityCharging."""
        self.spawn(self._send_quietly(call.NotifyPriorityCharging(transaction_id=transaction_ref, activated=active)),
                   name="priority-charging")

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict | None = None, **_):
        """ClearChargingProfile; the PriorityCharging purpose clears only those profiles."""
        criteria = charging_profile_criteria or {}
        if criteria.get("charging_profile_purpose") != PRIORITY:
            return super().on_clear_charging_profile(charging_profile_id=charging_profile_id,
                                                     charging_profile_criteria=charging_profile_criteria)
        cleared = self.core.station.clear_profiles(
            profile_id=charging_profile_id, evse_id=criteria.get("evse_id"), purpose=PRIORITY_CHARGING,
            stack_level=criteria.get("stack_level"))
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    # ------------------------------------------------------------ GetChargingProfiles

    def _matching_profiles(self, evse_id: int | None, criteria: dict):
        """The CSMS's profiles matching ``criteria`` (chargingLimitSource CSO, and PriorityCharging, included)."""
        sources = criteria.get("charging_limit_source")
        if sources and CSO not in sources:
            return []
        if criteria.get("charging_profile_purpose") != PRIORITY:
            return super()._matching_profiles(evse_id, criteria)
        found = super()._matching_profiles(evse_id, {k: v for k, v in criteria.items()
                                                     if k != "charging_profile_purpose"})
        return [p for p in found if p.purpose == PRIORITY_CHARGING]

    def _external_match(self, evse_id: int | None, criteria: dict) -> tuple[str, int, dict] | None:
        """The external limit in force as (source, EVSE id, profile) if it matches ``criteria``, else None."""
        limit = self.core.station.external_limit()
        if limit is None:
            return None
        limit_evse = limit.evse_id or 0
        ids, sources = criteria.get("charging_profile_id"), criteria.get("charging_limit_source")
        if ((evse_id is not None and evse_id != limit_evse)
                or criteria.get("charging_profile_purpose") not in (None, EXTERNAL)
                or criteria.get("stack_level") not in (None, 0)
                or (ids and EXTERNAL_PROFILE_ID not in ids) or (sources and limit.source not in sources)):
            return None
        return limit.source, limit_evse, external_profile(limit, now=self.clock.time())

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(self, request_id: int, charging_profile: dict, evse_id: int | None = None, **_):
        """GetChargingProfiles: Accepted when the CSMS's profiles or the external limit match, else NoProfiles."""
        found = self._matching_profiles(evse_id, charging_profile) or self._external_match(evse_id, charging_profile)
        return call_result.GetChargingProfiles(status="Accepted" if found else "NoProfiles")

    @after(Action.get_charging_profiles)
    async def after_get_charging_profiles(self, request_id: int, charging_profile: dict,
                                          evse_id: int | None = None, **_):
        """One ReportChargingProfiles per EVSE and source (the message carries one of each)."""
        reports: dict[tuple[str, int], list[dict]] = {}
        for profile in self._matching_profiles(evse_id, charging_profile):
            reports.setdefault((CSO, profile.evse_id), []).append(self.profile_to_message(profile))
        external = self._external_match(evse_id, charging_profile)
        if external is not None:
            source, evse, profile = external
            reports.setdefault((source, evse), []).append(profile)
        for i, ((source, evse), profiles) in enumerate(sorted(reports.items(), key=lambda r: (r[0][1], r[0][0]))):
            await self.call(call.ReportChargingProfiles(
                request_id=request_id, charging_limit_source=source, evse_id=evse,
                charging_profile=profiles, tbc=i < len(reports) - 1))
