"""OCPP 2.1 wording of the core's records: 2.0.1's (``agent.protocol.v201.codec``), with what 2.1 adds.

Every TransactionEvent says the ``operationMode`` in effect for the transaction as recorded with the
record (the core's journal captures it when the record is created: a queued record may go out much
later): ChargingOnly by default, Idle while a charging-profile period with operationMode Idle is in
force (0 A offered). A change of mode during the transaction is its own record, an Updated event with
triggerReason OperationModeChanged (queued by the core only for a change, which only a 2.1 profile can
cause; 2.0.1's codec drops it). V2X modes are refused when the profile comes. Every record is worded as in 2.0.1, and
the 2.1 schemas accept it (checked when it is sent). A ``transactionLimit`` in the CSMS's answer is
enforced by the station and echoed in later events (``transaction_limits``). An event whose meter
sample has per-phase Current.Import values says ``numberOfPhasesUsed``: the phases that carry current
(2.1: "if the Charging Station is able to report [it], then it SHALL"); without per-phase currents in
the sample it is left out, and the CSMS falls back on the schedule's or the device model's phases.
"""

from __future__ import annotations

import logging

from agent.protocol.v201.codec import TransactionCodec
from agent.protocol.v21.tariffs import CostCodec21
from agent.protocol.v21.transaction_limits import TransactionLimitCodec
from agent.runtime.store import OutboxItem

log = logging.getLogger("agent.ocpp21")

#: The operationMode of a record that carries none (2.1 OperationModeEnumType; the default).
OPERATION_MODE = "ChargingOnly"
#: A phase carrying less current than this (A) is not in use: a meter reads a few mA of noise on an idle phase.
PHASE_IN_USE_A = 0.5


def phases_used(sample: dict | None) -> int | None:
    """How many phases carry current in an outbox sample (its per-phase Current.Import values), or None if
    the sample has no per-phase currents or none flows."""
    currents = {v["phase"][:2]: v["value"] for v in (sample or {}).get("values") or []
                if v.get("measurand") == "Current.Import" and (v.get("phase") or "").startswith("L")}
    used = sum(1 for amps in currents.values() if amps >= PHASE_IN_USE_A)
    return used or None


class TransactionCodec21(CostCodec21, TransactionLimitCodec, TransactionCodec):
    """Neutral outbox records as 2.1 TransactionEvents: 2.0.1's, plus the operation mode of each record."""

    unreported_triggers = ()  # 2.1 reports a change of operation mode (OperationModeChanged)

    def encode(self, item: OutboxItem):
        """The 2.0.1 CALL for the record, saying the operation mode recorded with it."""
        request = super().encode(item)
        if item.group is None or request is None:
            return request
        request.transaction_info["operation_mode"] = item.payload.get("operation_mode") or OPERATION_MODE
        phases = phases_used(item.payload.get("sample"))
        if phases is not None and hasattr(request, "number_of_phases_used"):
            request.number_of_phases_used = phases
        return request
