"""OCPP 2.0.1 block K over the core's one composite-schedule engine: SetChargingProfile,
GetChargingProfiles (-> ReportChargingProfiles), ClearChargingProfile, GetCompositeSchedule,
and the external limit input reported with NotifyChargingLimit / ClearedChargingLimit (K12, K13).

The conversion, the acceptance flow and the composite schedule are shared with 1.6
(``agent.protocol.common.smart_charging``); 2.0.1's purpose names, its list of
schedules and the messages 1.6 lacks live here.
"""

from __future__ import annotations

from ocpp.routing import after, on
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from agent.runtime.clock import format_iso
from agent.core.charging.smart_charging import CHARGE_POINT_MAX, TX_PROFILE, ChargingProfile
from agent.protocol.common.smart_charging import SmartChargingBase, profile_from_fields, rate_unit_word

# The external limit the CSMS was last told of and has not seen cleared (source and EVSE), kept across
# connections: a limit lifted while offline is cleared at the next registration.
_LIMIT_TOLD_KEY = "ocpp201:external_limit_told"
# chargingSchedule.id of the external limit's schedule; it names no profile of the CSMS.
_EXTERNAL_SCHEDULE_ID = 0

# 2.0.1 purposes onto the core's: the station maximum and external constraints both cap the station.
_PURPOSES = {"ChargingStationMaxProfile": CHARGE_POINT_MAX, "ChargingStationExternalConstraints": CHARGE_POINT_MAX,
             "TxDefaultProfile": "TxDefaultProfile", "TxProfile": TX_PROFILE}
_PURPOSE_NAMES = {CHARGE_POINT_MAX: "ChargingStationMaxProfile", "TxDefaultProfile": "TxDefaultProfile",
                  TX_PROFILE: "TxProfile"}


def profile_from_201(data: dict, *, evse_id: int, transaction_ref: str | None) -> ChargingProfile:
    """A 2.0.1 ChargingProfileType (snake_case dict) as the core's ChargingProfile (first schedule)."""
    return profile_from_fields(data, profile_id=data["id"], purpose=_PURPOSES[data["charging_profile_purpose"]],
                               schedule=data["charging_schedule"][0], evse_id=evse_id,
                               transaction_ref=transaction_ref)


def profile_to_201(profile: ChargingProfile) -> dict:
    """The core's ChargingProfile as a 2.0.1 ChargingProfileType (for ReportChargingProfiles), as it was set."""
    s = profile.schedule
    # A profile stored before schedule ids were kept has none: its own id is the best guess.
    schedule_id = s.schedule_id if s.schedule_id is not None else profile.profile_id
    schedule = {"id": schedule_id, "charging_rate_unit": rate_unit_word(s.rate_unit),
                "charging_schedule_period": [
                    {"start_period": p.start_period_s, "limit": p.limit,
                     **({"number_phases": p.number_phases} if p.number_phases else {})} for p in s.periods]}
    if s.start_schedule is not None:
        schedule["start_schedule"] = format_iso(s.start_schedule)
    if s.duration_s is not None:
        schedule["duration"] = s.duration_s
    if s.min_charging_rate is not None:
        schedule["min_charging_rate"] = s.min_charging_rate
    out = {"id": profile.profile_id, "stack_level": profile.stack_level,
           "charging_profile_purpose": _PURPOSE_NAMES[profile.purpose], "charging_profile_kind": profile.kind,
           "charging_schedule": [schedule]}
    if profile.recurrency:
        out["recurrency_kind"] = profile.recurrency
    for field, value in (("valid_from", profile.valid_from), ("valid_to", profile.valid_to)):
        if value is not None:
            out[field] = format_iso(value)
    if profile.transaction_ref:
        out["transaction_id"] = profile.transaction_ref
    return out


def notify_charging_limit(limit, *, now: float) -> call.NotifyChargingLimit:
    """NotifyChargingLimit for an external limit (``hal.roles.ExternalLimit``) that became active.

    Its schedule is one period from ``now`` with the cap in A per phase and no
    duration: it holds until ClearedChargingLimit. evseId is left out for a
    limit on the whole station (2.0.1 allows only EVSE ids > 0 there).
    """
    schedule = {"id": _EXTERNAL_SCHEDULE_ID, "charging_rate_unit": "A", "start_schedule": format_iso(now),
                "charging_schedule_period": [{"start_period": 0, "limit": float(limit.limit_A)}]}
    return call.NotifyChargingLimit(
        charging_limit={"charging_limit_source": limit.source, "is_grid_critical": limit.grid_critical},
        charging_schedule=[schedule], evse_id=limit.evse_id)


class SmartChargingHandlers201(SmartChargingBase):
    """Mixed into the 2.0.1 adapter."""

    def profile_from_message(self, data: dict, *, evse_id: int, transaction_ref: str | None) -> ChargingProfile:
        """A 2.0.1 ChargingProfileType as the core's profile."""
        return profile_from_201(data, evse_id=evse_id, transaction_ref=transaction_ref)

    def profile_to_message(self, profile: ChargingProfile) -> dict:
        """The core's profile as the version's ChargingProfileType, for ReportChargingProfiles."""
        return profile_to_201(profile)

    def profile_transaction(self, evse_id: int, data: dict) -> str | None:
        """A 2.0.1 TxProfile names its transaction by the id the station gave it."""
        return self.core.station.transaction_for_profile(evse_id, ref=data.get("transaction_id"))

    # ------------------------------------------------------------ external limit (K12, K13)

    async def on_accepted(self) -> None:
        """Registered: report an external limit in force now, or clear one lifted while offline."""
        await super().on_accepted()
        if self.core is None:
            return
        limit = self.core.station.external_limit()
        told = self.core.store.get(_LIMIT_TOLD_KEY)
        if limit is not None:
            self.charging_limit_changed(limit, True)
        elif told is not None:
            self.spawn(self._clear_charging_limit(told["source"], told["evse_id"]), name="charging-limit")

    def charging_limit_changed(self, limit, active: bool) -> None:
        """CsmsPort (optional): an external limit became active (NotifyChargingLimit) or was lifted
        (ClearedChargingLimit). Not queued: the state in force is reported again at every registration."""
        if active:
            self.spawn(self._notify_charging_limit(limit), name="charging-limit")
        else:
            self.spawn(self._clear_charging_limit(limit.source, limit.evse_id), name="charging-limit")

    async def _notify_charging_limit(self, limit) -> None:
        # Recorded before sending: if the connection drops before the answer the CSMS may still have it,
        # and a limit lifted meanwhile must then be cleared at the next registration.
        self.core.store.put(_LIMIT_TOLD_KEY, {"source": limit.source, "evse_id": limit.evse_id})
        await self._send_quietly(notify_charging_limit(limit, now=self.clock.time()))

    async def _clear_charging_limit(self, source: str, evse_id: int | None) -> None:
        await self._send_quietly(call.ClearedChargingLimit(charging_limit_source=source, evse_id=evse_id))
        if self.core.station.external_limit() is None:  # not if the limit came back and was told meanwhile
            self.core.store.delete(_LIMIT_TOLD_KEY)

    # ------------------------------------------------------------ CSMS requests

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict, **_):
        """SetChargingProfile: validated, stored, applied to the offered current at once."""
        return call_result.SetChargingProfile(status=self.accept_profile(charging_profile, evse_id=evse_id))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict | None = None, **_):
        """ClearChargingProfile by id or criteria: Accepted if anything matched, else Unknown."""
        criteria = charging_profile_criteria or {}
        purpose = criteria.get("charging_profile_purpose")
        cleared = self.core.station.clear_profiles(
            profile_id=charging_profile_id, evse_id=criteria.get("evse_id"),
            purpose=_PURPOSES.get(purpose) if purpose else None, stack_level=criteria.get("stack_level"))
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    def _matching_profiles(self, evse_id: int | None, criteria: dict) -> list[ChargingProfile]:
        purpose = _PURPOSES.get(criteria.get("charging_profile_purpose") or "", None)
        ids = set(criteria.get("charging_profile_id") or [])
        return [p for p in self.core.station.charging_profiles()
                if (evse_id is None or p.evse_id == evse_id) and (purpose is None or p.purpose == purpose)
                and (criteria.get("stack_level") is None or p.stack_level == criteria["stack_level"])
                and (not ids or p.profile_id in ids)]

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(self, request_id: int, charging_profile: dict, evse_id: int | None = None, **_):
        """GetChargingProfiles: Accepted, then the matches follow in ReportChargingProfiles."""
        found = self._matching_profiles(evse_id, charging_profile)
        return call_result.GetChargingProfiles(status="Accepted" if found else "NoProfiles")

    @after(Action.get_charging_profiles)
    async def after_get_charging_profiles(self, request_id: int, charging_profile: dict,
                                          evse_id: int | None = None, **_):
        """One ReportChargingProfiles per EVSE (the message carries one evseId)."""
        by_evse: dict[int, list[ChargingProfile]] = {}
        for profile in self._matching_profiles(evse_id, charging_profile):
            by_evse.setdefault(profile.evse_id, []).append(profile)
        for i, (evse, profiles) in enumerate(sorted(by_evse.items())):
            # Every profile of one message shares a source; ours all come from the CSMS.
            await self.call(call.ReportChargingProfiles(
                request_id=request_id, charging_limit_source="CSO", evse_id=evse,
                charging_profile=[self.profile_to_message(p) for p in profiles], tbc=i < len(by_evse) - 1))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, duration: int, evse_id: int, charging_rate_unit: str | None = None, **_):
        """GetCompositeSchedule from now over ``duration`` seconds."""
        reply = self.composite_reply(evse_id, duration=duration, charging_rate_unit=charging_rate_unit)
        if reply is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(status="Accepted", schedule={
            "evse_id": evse_id, "duration": duration, "schedule_start": reply.start,
            "charging_rate_unit": reply.rate_unit, "charging_schedule_period": reply.periods})
