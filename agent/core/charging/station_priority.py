"""Priority charging of running transactions (OCPP 2.1 K21/K22), in the core's words.

A mixin of :class:`agent.core.charging.station.ChargingStation`; it uses the station's
``evses``, ``profiles``, ``store``, ``port`` and ``apply_limits``.

Which transactions have priority charging is kept in the state store, so it survives an agent
restart that resumes the transaction (Reset ImmediateAndResume); a transaction that ended takes
its priority with it. The choices a home or semi-public AC wallbox makes where the spec leaves them:

* Only the CSMS switches priority charging on (UsePriorityCharging): this station has no local input
  for it (no boost button, no local app), so it never starts priority charging by itself.
* It does end it by itself when the PriorityCharging profile the transaction was using is cleared
  (or expires from the store) while priority is active: nothing is left to charge by, and the
  CSMS is told with NotifyPriorityCharging(activated false) through ``CsmsPort.priority_charging_changed``.
"""

from __future__ import annotations

import logging

from agent.core.charging.smart_charging.priority import priority_profiles, profiles_for_evse

log = logging.getLogger("agent.station")

_KEY = "station:priority_charging"

ACCEPTED = "Accepted"
REJECTED = "Rejected"  # no such transaction running here
NO_PROFILE = "NoProfile"  # no PriorityCharging profile for its EVSE


class StationPriorityCharging:
    """UsePriorityCharging and the profiles each EVSE's limit is computed from."""

    def _priority_refs(self) -> set[str]:
        """The transactions with priority charging active (read from the store once)."""
        refs = self.__dict__.get("_priority_active")
        if refs is None:
            refs = self.__dict__["_priority_active"] = set(self.store.get(_KEY) or [])
        return refs

    def _save_priority(self) -> None:
        self.store.put(_KEY, sorted(self._priority_refs()))

    def _running_evse(self, ref: str) -> int | None:
        """The EVSE on which transaction ``ref`` runs now, or None."""
        return next((evse_id for evse_id, machine in self.evses.items()
                     if machine.transaction is not None and machine.transaction.ref == ref), None)

    def set_priority_charging(self, ref: str, active: bool) -> str:
        """UsePriorityCharging: "Accepted" (applied to the offered current at once), "Rejected" (``ref`` does not
        run here) or "NoProfile" (activation without a PriorityCharging profile for its EVSE)."""
        evse_id = self._running_evse(ref)
        if evse_id is None:
            return REJECTED
        refs = self._priority_refs()
        if active and not priority_profiles(self.profiles, evse_id):
            return NO_PROFILE
        if active != (ref in refs):
            refs.add(ref) if active else refs.discard(ref)
            self._save_priority()
            log.info("priority charging %s for transaction %s", "activated" if active else "deactivated", ref)
            self.apply_limits()
        return ACCEPTED

    def priority_charging(self, ref: str) -> bool:
        """Whether priority charging is active for transaction ``ref``."""
        return ref in self._priority_refs()

    def limit_profiles(self, evse_id: int, profiles) -> list:
        """The installed ``profiles`` as they count for ``evse_id`` now (see ``smart_charging.priority``)."""
        machine = self.evses.get(evse_id)
        tx = machine.transaction if machine is not None else None
        return profiles_for_evse(profiles, evse_id, priority=tx is not None and tx.ref in self._priority_refs())

    def check_priority_charging(self) -> None:
        """After a change of profiles or transactions: forget ended transactions, and end priority charging
        (telling the CSMS) where no PriorityCharging profile is left for it."""
        refs = self._priority_refs()
        changed = False
        for ref in sorted(refs):
            evse_id = self._running_evse(ref)
            if evse_id is not None and priority_profiles(self.profiles, evse_id):
                continue
            refs.discard(ref)
            changed = True
            if evse_id is not None:  # still running: the station ended priority charging by itself
                log.info("priority charging of transaction %s ended: no PriorityCharging profile left", ref)
                notify = getattr(self.port, "priority_charging_changed", None)
                if notify is not None:
                    notify(ref, False)
        if changed:
            self._save_priority()
