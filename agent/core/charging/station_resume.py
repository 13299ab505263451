"""A restart that keeps the running transactions (OCPP 2.1 Reset ImmediateAndResume).

A mixin of :class:`agent.core.charging.station.ChargingStation`. Before such a restart the station
leaves its transactions open in the journal and persists a marker (:data:`RESUME_KEY`); the agent
then stops as for any reset: the HAL's safe state opens every contactor, but leaves the cables of
those transactions locked (``Hal.keep_locked`` asks :meth:`StationResume.cables_kept_locked`). At
the next start, ``_recover`` ends only the open transactions :meth:`StationResume._not_resumed` leaves it: with the
marker set and the cable still plugged in, the EVSE machine adopts its transaction again
(``evse_resume``) and it goes on with the same transactionId, reported as resumed; a cable unplugged
meanwhile ends it as an unplug during the session would have (EVDisconnected). Without the marker
(a crash, a power cut, any other restart) nothing changes: ``_recover`` ends them. The marker is
read once and removed, so a crash later in the resumed session still ends its transaction at the
start after it.

It uses the station's ``store``, ``journal``, ``evses``, ``hal``, ``clock`` and ``_energy_now``.
"""

from __future__ import annotations

import logging

from agent.core.charging.evse_inputs import PLUGGED
from agent.core.charging.model import StopReason
from agent.core.charging.transactions import Transaction
from agent.errors import StoreError

log = logging.getLogger("agent.station")

#: Persisted before a restart that keeps the transactions; read (and removed) at the next start.
RESUME_KEY = "station:resume_transactions"
_RESTART_REASON_KEY = "station:restart_reason"  # (station.py's key: what ends a transaction not resumed)


class StationResume:
    """The station's side of a restart that keeps its transactions (see the module docstring)."""

    async def prepare_resume_reset(self) -> None:
        """Keep every open transaction across the coming restart (it resumes if its cable is still in).

        Raises StoreError when the marker cannot be written: then nothing would resume, and the
        caller must not restart as if it would.
        """
        self.store.put(_RESTART_REASON_KEY, StopReason.REBOOT.value)  # for one that cannot resume
        self.store.put(RESUME_KEY, True)
        self.hal.keep_locked = self.cables_kept_locked  # asked in the HAL's safe state, at the stop
        log.warning("restart keeping the transactions: %s",
                    ", ".join(tx.ref for tx in self.journal.open_transactions()) or "none runs")

    def cables_kept_locked(self) -> frozenset[int]:
        """The EVSEs whose cable stays locked while the agent is down: those of the transactions a
        restart that keeps them will resume (none on any other stop)."""
        try:
            if not self.store.get(RESUME_KEY):
                return frozenset()
        except StoreError:
            return frozenset()
        return frozenset(tx.evse_id for tx in self.journal.open_transactions() if tx.evse_id in self.evses)

    def _take_resume_marker(self) -> bool:
        """Whether the last run stopped to resume its transactions (the marker is removed)."""
        try:
            resume = bool(self.store.get(RESUME_KEY))
            self.store.delete(RESUME_KEY)
        except StoreError as exc:  # unreadable: the transactions end, as after any restart
            log.error("the resume marker cannot be read: %s", exc)
            return False
        return resume

    async def _not_resumed(self, open_transactions: list[Transaction]) -> list[Transaction]:
        """Of the transactions the last run left open, those ``_recover`` must end: all of them, unless that
        run stopped to resume them (then those whose EVSE took them back, or that ended here, are not)."""
        ending = open_transactions
        if self._take_resume_marker():
            ending = [tx for tx in open_transactions if not await self._resume_open(tx)]
        resumed = {m.transaction.ref for m in self.evses.values() if m.transaction is not None}
        for tx in open_transactions:
            if tx.ref not in resumed:
                self.transaction_limits.forget(tx.ref)  # it ends at this start: its limit is of no more use
        return ending

    async def _resume_open(self, tx: Transaction) -> bool:
        """Resume ``tx`` (marker set), or end it if its cable went meanwhile; False: not handled here."""
        machine = self.evses.get(tx.evse_id)
        if machine is None:
            return False
        if self.hal.evse(tx.evse_id).pilot.state not in PLUGGED:
            energy = await self._energy_now(tx.evse_id)
            meter_stop = max(tx.last_meter_Wh, energy) if energy is not None else tx.last_meter_Wh
            self.journal.end(tx.ref, meter_stop_Wh=meter_stop, stopped_at=self.clock.time(),
                             reason=StopReason.EV_DISCONNECTED, ev_connected=False)
            log.warning("transaction %s on EVSE %d not resumed: the cable was unplugged during the restart",
                        tx.ref, tx.evse_id)
            return True
        if not await machine.adopt_transaction(tx):
            return False
        self.transaction_limits.resume(tx.ref)  # a limit set before the restart holds on (time from the start)
        return True
