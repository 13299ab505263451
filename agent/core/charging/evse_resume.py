"""Taking a transaction back after a restart that was asked to keep it (OCPP 2.1 Reset ImmediateAndResume).

The journal still holds the transaction open; before its loop starts, the EVSE machine adopts it
again: the cable is locked first, then the transaction is reported as resumed (2.0.1/2.1
triggerReason TxResumed, the same transactionId and the next seqNo), and the machine's first
evaluation switches the outputs by its usual rules (the contactor closes only while the EV asks
for energy and the cable is held). Part of ``EvseMachine``, which inherits it; never used alone.
"""

from __future__ import annotations

import logging

from agent.core.charging.evse_inputs import PLUGGED
from agent.core.charging.transactions import Transaction

log = logging.getLogger("agent.evse")

#: The trigger of the record that says a transaction goes on after a restart (OCPP TriggerReason).
TX_RESUMED = "TxResumed"


class TransactionResume:
    """``adopt_transaction`` for ``EvseMachine`` (see the module docstring)."""

    async def adopt_transaction(self, tx: Transaction) -> bool:
        """Take back ``tx``, left open by the previous run, before the loop starts; False (nothing
        changed) when the loop already runs or the cable is no longer plugged in."""
        if self._task is not None or self.transaction is not None:
            return False  # only at start-up: never behind the back of a running loop
        self.pilot = self.hw.pilot.state
        if self.pilot not in PLUGGED:
            return False
        self.transaction = tx
        # A transaction without an idToken started at plug-in and still waits for one: no energy.
        self.tx_authorized = bool(tx.id_token)
        self._auth_ended = None
        self._tx_had_cable, self._tx_had_energy = True, False
        self._cable_wait_from = None
        if self.tx_authorized and not await self.outputs.lock_cable():
            log.error("EVSE %d: the cable did not lock again after the restart", self.evse_id)
        self.status = self._target_status()
        self.journal.add_status(tx.ref, self.status.value, timestamp=self.clock.time(), ev_connected=True,
                                trigger=TX_RESUMED)
        log.warning("EVSE %d: transaction %s resumed after the restart (%s)", self.evse_id, tx.ref,
                    self.status.value)
        self._on_transaction(self.evse_id, tx)
        return True
