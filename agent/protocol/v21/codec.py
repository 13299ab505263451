"""OCPP 2.1 wording of the core's records: 2.0.1's (``agent.protocol.v201.codec``), with what 2.1 adds.

A TransactionEvent Started says the transaction's ``operationMode``: ChargingOnly, the one mode
of an AC station without V2X (2.1 reports a change of mode with triggerReason
OperationModeChanged, which cannot happen here). Every other record is worded as in 2.0.1, and
the 2.1 schemas accept it (checked when it is sent). A ``transactionLimit`` in the CSMS's answer is
enforced by the station and echoed in later events (``transaction_limits``).
"""

from __future__ import annotations

import logging

from agent.core.charging.transactions import STARTED
from agent.protocol.v201.codec import TransactionCodec
from agent.protocol.v21.tariffs import CostCodec21
from agent.protocol.v21.transaction_limits import TransactionLimitCodec
from agent.runtime.store import OutboxItem

log = logging.getLogger("agent.ocpp21")

#: The operationMode of every transaction here (2.1 OperationModeEnumType).
OPERATION_MODE = "ChargingOnly"


class TransactionCodec21(CostCodec21, TransactionLimitCodec, TransactionCodec):
    """Neutral outbox records as 2.1 TransactionEvents: 2.0.1's, plus the operation mode at the start."""

    def encode(self, item: OutboxItem):
        """The 2.0.1 CALL for the record; a Started event also says the operation mode."""
        request = super().encode(item)
        if item.group is not None and item.action == STARTED and request is not None:
            request.transaction_info["operation_mode"] = OPERATION_MODE
        return request
