"""The station's charging limits: smart-charging profiles and the external limit input, applied
to every EVSE's offered current at the moments they change (timers, no polling).

A mixin of :class:`agent.core.charging.station.ChargingStation`, kept apart so each file has one concern;
it uses the station's ``evses``, ``profiles``, ``hal``, ``clock``, ``settings``, ``journal``,
``port``, ``evse_phases`` and ``_limit_timer``.
"""

from __future__ import annotations

import asyncio

from agent.core.charging.evse import PLUGGED
from agent.core.charging.evse_inputs import Limit
from agent.core.charging.smart_charging import composite_schedule, limit_at, next_change, operation_mode_at
from agent.core.charging.smart_charging.model import CHARGING_ONLY
from agent.core.charging.smart_charging.dynamic import update_problem, with_limit


class ChargingLimits:
    """Profiles and the external cap -> each EVSE's limit; SetChargingProfile and GetCompositeSchedule."""

    def _site(self, evse_id: int) -> dict:
        """What the composite of one EVSE depends on besides the profiles."""
        machine = self.evses[evse_id]
        tx = machine.transaction
        return {"evse_id": evse_id, "now_tx_start": tx.started_at if tx else None,
                "transaction_ref": tx.ref if tx else None, "phases": self.evse_phases.get(evse_id, 3),
                "evse_max_A": self._capped(evse_id, machine.max_current_A)}

    def external_limit(self):
        """The external limit imposed now (a ``hal.roles.ExternalLimit``), or None."""
        limit_input = getattr(self.hal, "limit_input", None)
        return limit_input.imposed if limit_input is not None else None

    def _capped(self, evse_id: int, max_A: float) -> float:
        """``max_A`` lowered to the external limit where it applies (evse 0: only a station-wide one).

        It lowers the maximum the engine starts from, so like the EVSE's own
        maximum it caps every profile, shows in the composite schedule and is
        never exceeded; a 0 A cap suspends like a 0 A schedule period.
        """
        limit = self.external_limit()
        if limit is None or limit.evse_id not in (None, evse_id):
            return max_A
        return min(max_A, limit.limit_A)

    def external_limit_changed(self, event) -> None:
        """The external limit input became active or inactive (``ExternalLimitChanged``): re-apply every
        EVSE's limit now (the cap is read from the input itself) and tell the CSMS where the version can."""
        self.apply_limits()
        notify = getattr(self.port, "charging_limit_changed", None)
        if notify is not None:
            notify(event.limit, event.active)

    def apply_limits(self) -> None:
        """Offer each EVSE the current its profiles allow now, and wake at the next boundary (no polling)."""
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        now, profiles, wake = self.clock.time(), list(self.profiles), None
        for evse_id, machine in self.evses.items():
            site = self._site(evse_id)
            evse_profiles = self.limit_profiles(evse_id, profiles)  # priority charging (2.1) swaps Tx profiles
            amps = limit_at(evse_profiles, now, **site)
            if amps != machine.limit_A:
                machine.submit(Limit(amps=amps))
            self._follow_operation_mode(machine, operation_mode_at(evse_profiles, now, **site))
            boundary = next_change(evse_profiles, now, **site)
            if boundary is not None:
                wake = boundary if wake is None else min(wake, boundary)
        if wake is not None:
            # A little after the boundary, so the new period is the one in force when we look.
            delay = max(0.0, wake - self.clock.time()) + 0.01
            self._limit_timer = asyncio.get_running_loop().call_later(delay, self.apply_limits)

    def _follow_operation_mode(self, machine, mode: str) -> None:
        """Record a change of the operation mode in force (2.1 Idle / ChargingOnly) for the EVSE's running
        transaction: the records from now on carry it, and the CSMS hears of the change (OperationModeChanged).
        Without a 2.1 Idle period the mode stays the default, ChargingOnly, and nothing is recorded."""
        tx = machine.transaction
        if tx is None or mode == (self.journal.operation_mode(tx.ref) or CHARGING_ONLY):
            return
        self.journal.change_operation_mode(tx.ref, mode, charging_state=machine.status.value,
                                           timestamp=self.clock.time(), ev_connected=machine.pilot in PLUGGED)
        self._outbox_changed()

    def profile_problems(self, profile) -> list[str]:
        """Why a profile from the CSMS cannot be installed (empty: it can), against the station's limits."""
        from agent.core.charging.smart_charging import AMPS, WATTS, validate_profile

        names = {AMPS: "Current", WATTS: "Power"}
        allowed = tuple(u for u, n in names.items() if n in self.settings["charging_schedule_allowed_charging_rate_unit"])
        problems = validate_profile(profile, max_stack_level=self.settings["charge_profile_max_stack_level"],
                                    max_periods=self.settings["charging_schedule_max_periods"], allowed_units=allowed)
        installed = [p for p in self.profiles if p.profile_id != profile.profile_id]
        if len(installed) >= self.settings["max_charging_profiles_installed"]:
            problems.append("MaxChargingProfilesInstalled reached")
        return problems

    def transaction_for_profile(self, evse_id: int, *, remote_id: str | None = None, ref: str | None = None):
        """The running transaction a TxProfile is for (the one named, if named), or None."""
        machine = self.evses.get(evse_id)
        tx = machine.transaction if machine else None
        if tx is None or (ref is not None and tx.ref != ref):
            return None
        if remote_id is not None and self.journal.get(tx.ref).remote_id != str(remote_id):
            return None
        return tx.ref

    def install_profile(self, profile) -> None:
        """SetChargingProfile (validated by the caller): store it and apply it at once."""
        self.profiles.install(profile)
        self.check_priority_charging()  # a PriorityCharging profile in use may have been replaced
        self.apply_limits()

    def update_dynamic_profile(self, profile_id: int, *, limit: float | None) -> str | None:
        """A Dynamic profile's new limit (in its rate unit; UpdateDynamicSchedule or a pulled update): stored,
        persisted and applied to the offered current at once. None when done, else why it was not."""
        profile = next((p for p in self.profiles if p.profile_id == profile_id), None)
        problem = update_problem(profile, profile_id=profile_id, limit=limit)
        if problem is None:
            self.profiles.update(with_limit(profile, limit=limit, now=self.clock.time()))
            self.apply_limits()
        return problem

    def clear_profiles(self, **filters) -> bool:
        """ClearChargingProfile: True if anything was cleared."""
        cleared = self.profiles.clear(**filters)
        self.check_priority_charging()  # priority charging ends with the last PriorityCharging profile
        self.apply_limits()
        return cleared

    def composite(self, evse_id: int, *, duration_s: int, rate_unit: str):
        """GetCompositeSchedule from now (evse 0: the station's own maximum); None when it cannot be
        answered (an unknown EVSE, a negative duration: the schemas set no minimum)."""
        if (evse_id != 0 and evse_id not in self.evses) or duration_s < 0:
            return None
        if evse_id == 0:
            site = {"evse_id": 0, "now_tx_start": None, "transaction_ref": None,
                    "phases": max(self.evse_phases.values(), default=3),
                    "evse_max_A": self._capped(0, max(m.max_current_A for m in self.evses.values()))}
        else:
            site = self._site(evse_id)
        profiles = self.limit_profiles(evse_id, list(self.profiles))  # priority charging (2.1) swaps Tx profiles
        return composite_schedule(profiles, start=float(int(self.clock.time())),
                                  duration_s=duration_s, rate_unit=rate_unit, **site)
