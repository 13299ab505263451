"""OCPP 2.1 block B, Reset: 2.0.1's Immediate and OnIdle, and 2.1's ImmediateAndResume.

ImmediateAndResume restarts the agent at once without ending the running transactions: the
station keeps them open across the restart (``agent.core.charging.station_resume``); while the agent
is down their contactors are open and their cables stay locked; and after the restart each transaction
whose cable is still plugged in goes on with the same transactionId (TransactionEvent Updated,
triggerReason TxResumed, the next seqNo); the BootNotification says RemoteReset. It restarts the
whole agent, so it is offered for the station only: for one EVSE it is Rejected with the reason.
"""

from __future__ import annotations

import logging

from ocpp.routing import after, on
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.errors import StoreError
from agent.protocol.common.boot import REMOTE_RESET

log = logging.getLogger("agent.ocpp21")

IMMEDIATE_AND_RESUME = "ImmediateAndResume"


class ResetHandlers21:
    """Mixed into the 2.1 adapter before the 2.0.1 adapter, whose Reset it extends."""

    @on(Action.reset)
    def on_reset(self, type: str, evse_id: int | None = None, **_):  # noqa: A002 (OCPP's name)
        """Reset as in 2.0.1; ImmediateAndResume (the station only) Accepted: the restart keeps the transactions."""
        if type != IMMEDIATE_AND_RESUME:
            return super().on_reset(type=type, evse_id=evse_id)
        if evse_id is not None:
            return call_result.Reset(status="Rejected", status_info={
                "reason_code": "UnsupportedParam",
                "additional_info": "ImmediateAndResume restarts the whole station: not for one EVSE"})
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    async def after_reset(self, type: str, evse_id: int | None = None, **_):  # noqa: A002 (OCPP's name)
        """Restart keeping the transactions (ImmediateAndResume), or the 2.0.1 reset."""
        if type != IMMEDIATE_AND_RESUME:
            await super().after_reset(type=type, evse_id=evse_id)
            return
        if evse_id is not None:
            return  # refused
        try:
            await self.core.station.prepare_resume_reset()
        except StoreError as exc:  # nothing could resume: the CSMS asked for an immediate reset, so do that
            log.error("Reset ImmediateAndResume: the transactions cannot be kept (%s); they end", exc)
            await super().after_reset(type="Immediate")
            return
        self.set_next_boot_reason(REMOTE_RESET)
        log.warning("Reset ImmediateAndResume: restarting; the running transactions resume after it")
        self.core.request_reset(False)
