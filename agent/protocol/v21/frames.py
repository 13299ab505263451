"""OCPP 2.1's two frames that are never answered, which the `ocpp` library (2.1.0) does not know.

* CALLRESULTERROR ``[5, id, code, description, details]``: the CSMS could not take one of our
  CALLRESULTs. Nothing is waiting for it (the CALL it answers was answered), so it is logged,
  counted and dropped; it never fails anything or ends the connection.
* SEND ``[6, id, action, payload]``: a CALL without a reply (2.1 uses it only for
  NotifyPeriodicEventStream, from the station). It does not take the one-CALL-at-a-time slot and
  is never queued: what could not be sent while offline is lost, which is what a stream wants.
  One from the CSMS (2.1 defines none) is logged and dropped, unanswered.
"""

from __future__ import annotations

import logging

from agent.errors import ConnectionLost
from agent.protocol.common import rpc
from agent.protocol.common.case_keys import to_camel

log = logging.getLogger("agent.ocpp21")


class Frames21:
    """Mixed into the 2.1 adapter (an ``AdapterBase``): receives CALLRESULTERROR and SEND, sends SEND."""

    #: CALLRESULTERRORs received on this connection.
    callresult_errors: int = 0
    #: The last one, as (message id, error code, description), or None.
    last_callresult_error: tuple[str, str, str] | None = None

    def unanswered_frame(self, frame) -> None:
        """A CALLRESULTERROR is logged and counted, a SEND from the CSMS logged; neither is answered."""
        if frame.message_type == rpc.CALLRESULTERROR:
            self.callresult_errors += 1
            self.last_callresult_error = (frame.message_id, frame.error_code, frame.error_description[:200])
            log.warning("CSMS could not take our CALLRESULT %.40r: %s %.200s (%d on this connection)",
                        frame.message_id, frame.error_code, frame.error_description, self.callresult_errors)
            return
        log.warning("dropping SEND %.60s %.40r from the CSMS: it has no SEND for a station", frame.action,
                    frame.message_id)

    async def send_unanswered(self, action: str, payload: dict) -> bool:
        """Send ``payload`` (snake_case keys) as a SEND of ``action``; True once written, False when not
        connected (never queued). The payload is checked against the 2.1 schema first (ValueError)."""
        body = to_camel(payload)
        problem = rpc.validate(self.ocpp_version, rpc.SEND, action, body)
        if problem is not None:
            raise ValueError(f"refusing to send invalid {action}: {problem[1]}")
        await self._gate.passage(action)  # as every CALL: never between a CSMS request and its answer
        if self._lost:
            return False
        try:
            await self._send(rpc.send_frame(str(self._unique_id_generator()), action, body))
        except ConnectionLost:
            return False
        return True
