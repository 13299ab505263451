"""OCPP 2.1 dynamic charging profiles (block K, chargingProfileKind Dynamic) over the core's
``agent.core.charging.smart_charging.dynamic``.

* SetChargingProfile takes a Dynamic profile like any other (one period; ``dynUpdateInterval`` kept,
  ``dynUpdateTime`` set to when the station received it: the period and a ``duration`` count from it),
  and GetChargingProfiles reports both back, ``dynUpdateTime`` as last updated.
* UpdateDynamicSchedule (CSMS -> station): the profile's new limit, in its chargingRateUnit, stored and
  applied to the pilot at once. Rejected, with the reason, for an id that is no Dynamic profile here
  and for what an AC pilot cannot do (per-phase limits, setpoints, discharging: the same words as a
  SetChargingProfile refusal).
* PullDynamicScheduleUpdate (station -> CSMS): for each Dynamic profile with a ``dynUpdateInterval``,
  one timer (no polling) that asks the CSMS that many seconds after the last update received (or the
  profile's installation); a scheduleUpdate in an Accepted answer is applied like UpdateDynamicSchedule.
  The timers run only while registered (the next pull goes out after a reconnect, at once when one
  fell due offline), and a timer is dropped when its profile is cleared, replaced or expires. A Dynamic
  TxProfile that came with a remote start is installed when its transaction starts: its timer starts then.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from ocpp.routing import on
from ocpp.v21 import call, call_result
from ocpp.v21.enums import Action

from agent.core.charging.smart_charging.dynamic import next_pull, update_stamp
from agent.core.charging.smart_charging.model import DYNAMIC
from agent.errors import CallAborted, CallErrorReceived, CallTimeout, ConnectionLost, InvalidResponse
from agent.protocol.v21.smart_charging import unsupported_period_fields
from agent.runtime.clock import format_iso

log = logging.getLogger("agent.ocpp21")

#: What this mixin sends on its own (read by `ocpp-agent pics` through the adapter's ``sends``).
DYNAMIC_SENDS = frozenset({"PullDynamicScheduleUpdate"})
_LOST = (CallTimeout, CallAborted, ConnectionLost, CallErrorReceived, InvalidResponse)


class DynamicProfileHandlers21:
    """Mixed into the 2.1 adapter before the smart-charging handlers it extends."""

    # ------------------------------------------------------------ the profile, both ways

    def profile_from_message(self, data: dict, *, evse_id: int, transaction_ref: str | None):
        """The 2.1 conversion, keeping a Dynamic profile's dynUpdateInterval; its dynUpdateTime is now, when the
        station receives it (K28: the station sets it at installation and at each update, whatever the CSMS
        wrote there)."""
        profile = super().profile_from_message(data, evse_id=evse_id, transaction_ref=transaction_ref)
        if profile.kind != DYNAMIC:
            return profile
        return replace(profile, dyn_update_interval_s=data.get("dyn_update_interval"),
                       dyn_update_time=update_stamp(self.clock.time()))

    def profile_to_message(self, profile) -> dict:
        """As in 2.0.1, with a Dynamic profile's dynUpdateInterval and its last dynUpdateTime."""
        out = super().profile_to_message(profile)
        if profile.dyn_update_interval_s:
            out["dyn_update_interval"] = profile.dyn_update_interval_s
        if profile.dyn_update_time is not None:
            out["dyn_update_time"] = format_iso(profile.dyn_update_time)
        return out

    # ------------------------------------------------------------ CSMS requests

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict, **_):
        """SetChargingProfile as before; a Dynamic profile installed (or replaced) restarts its pull timer."""
        result = super().on_set_charging_profile(evse_id=evse_id, charging_profile=charging_profile)
        if result.status == "Accepted":
            self._dyn_received()[charging_profile["id"]] = self.clock.time()
            self.after_reply(lambda: self._arm_pulls(restart={charging_profile["id"]}))
        return result

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, charging_profile_id: int | None = None,
                                  charging_profile_criteria: dict | None = None, **_):
        """ClearChargingProfile as before; the pull timers of the profiles cleared stop."""
        result = super().on_clear_charging_profile(charging_profile_id=charging_profile_id,
                                                   charging_profile_criteria=charging_profile_criteria)
        self.after_reply(self._arm_pulls)
        return result

    @on(Action.update_dynamic_schedule)
    def on_update_dynamic_schedule(self, charging_profile_id: int, schedule_update: dict, **_):
        """UpdateDynamicSchedule: the Dynamic profile's new limit, applied at once; else Rejected with why."""
        reason = self._apply_update(charging_profile_id, schedule_update)
        if reason is None:
            return call_result.UpdateDynamicSchedule(status="Accepted")
        code, words = reason
        log.warning("UpdateDynamicSchedule %s refused: %s", charging_profile_id, words)
        return call_result.UpdateDynamicSchedule(status="Rejected",
                                                 status_info={"reason_code": code, "additional_info": words[:1024]})

    def _apply_update(self, profile_id: int, update: dict) -> tuple[str, str] | None:
        """Apply a ChargingScheduleUpdateType (snake_case) to profile ``profile_id``: None, or (reasonCode, why)."""
        unsupported = unsupported_period_fields(update)
        if unsupported is not None:
            return "UnsupportedParam", unsupported
        problem = self.core.station.update_dynamic_profile(profile_id, limit=update.get("limit"))
        if problem is not None:
            return "InvalidProfile", problem
        self._dyn_received()[profile_id] = self.clock.time()
        self.after_reply(lambda: self._arm_pulls(restart={profile_id}))
        return None

    # ------------------------------------------------------------ PullDynamicScheduleUpdate timers

    async def on_accepted(self) -> None:
        """Registered: the pull timers start (a pull that fell due while offline goes out now)."""
        await super().on_accepted()
        if self.core is not None:
            self._arm_pulls()

    def on_disconnected(self) -> None:
        """Offline: no pull is sent until the next registration."""
        for timer in self._dyn_timers().values():
            timer.cancel()
        self._dyn_timers().clear()
        super().on_disconnected()

    def outbox_changed(self) -> None:
        """CsmsPort: as before; a transaction's records also mean a Dynamic TxProfile that came with a remote
        start may just have been installed with it, so its pull timer starts."""
        super().outbox_changed()
        self._arm_pulls()

    def _dyn_timers(self) -> dict[int, asyncio.TimerHandle]:
        if not hasattr(self, "_dynamic_timers"):
            self._dynamic_timers: dict[int, asyncio.TimerHandle] = {}
        return self._dynamic_timers

    def _dyn_received(self) -> dict[int, float]:
        """Station-clock time of the last update received per profile on this connection."""
        if not hasattr(self, "_dynamic_received"):
            self._dynamic_received: dict[int, float] = {}
        return self._dynamic_received

    def _arm_pulls(self, *, restart: set[int] = frozenset()) -> None:
        """One timer per Dynamic profile that wants pulls; the timers of profiles gone (or in ``restart``) stop."""
        if self.core is None or self._lost:
            return
        timers = self._dyn_timers()
        profiles = {p.profile_id: p for p in self.core.station.charging_profiles()}
        for profile_id in [i for i in timers if i not in profiles or i in restart]:
            timers.pop(profile_id).cancel()
        now = self.clock.time()
        for profile_id, profile in profiles.items():
            if profile_id in timers:
                continue
            # The interval counts from the last update: as the profile records it, or as received here.
            known = [t for t in (profile.dyn_update_time, self._dyn_received().get(profile_id)) if t is not None]
            last = max(known) if known else self._dyn_received().setdefault(profile_id, now)
            due = next_pull(profile, last_update=last)
            if due is not None:
                timers[profile_id] = asyncio.get_running_loop().call_later(
                    max(0.0, due - now), self._pull_due, profile_id)

    def _pull_due(self, profile_id: int) -> None:
        self._dyn_timers().pop(profile_id, None)
        self.spawn(self._pull(profile_id), name="dynamic-pull")

    async def _pull(self, profile_id: int) -> None:
        """Ask the CSMS for profile ``profile_id``'s update and apply it; the next pull an interval later."""
        if not any(p.profile_id == profile_id for p in self.core.station.charging_profiles()):
            return  # cleared meanwhile (a TxProfile ends with its transaction)
        try:
            result = await self.call(call.PullDynamicScheduleUpdate(charging_profile_id=profile_id))
        except _LOST as exc:
            log.warning("PullDynamicScheduleUpdate %s not answered: %s", profile_id, exc)
            result = None
        update = result.schedule_update if result is not None and result.status == "Accepted" else None
        if update:
            reason = self._apply_update(profile_id, update)
            if reason is not None:
                log.warning("pulled update of profile %s not applied: %s", profile_id, reason[1])
        self._dyn_received()[profile_id] = self.clock.time()  # the interval counts from this answer
        self._arm_pulls(restart={profile_id})
