"""OCPP 2.1 transaction limits in the TransactionEvent codec: the CSMS's ``transactionLimit`` is handed to
the station, which enforces it (``agent.core.charging.transaction_limits``), and every event sent after
it says it in ``transactionInfo.transactionLimit``.

2.1 sets a limit only in a TransactionEventResponse (the 2.1 schemas have it nowhere else a station
receives). maxEnergy and maxTime end the transaction by themselves (stoppedReason EnergyLimitReached /
TimeLimitReached), and so does maxCost, against the cost the station calculates itself from the tariff
the transaction is priced with (triggerReason CostLimitReached; 2.1's ReasonEnumType has no cost reason,
so stoppedReason Other); a transaction no tariff prices never reaches its maxCost. maxSoC needs the EV's
state of charge over ISO 15118, which this AC station never learns: reported, never enforced. A limit for a transaction that no longer runs (the answer to
its Ended event) changes nothing.
"""

from __future__ import annotations

import logging

from agent.core.charging.transaction_limits import TransactionLimit
from agent.runtime.store import OutboxItem

log = logging.getLogger("agent.ocpp21")

#: TransactionLimitType field (snake_case, as the library gives it) -> TransactionLimit field.
_FIELDS = {"max_energy": "max_energy_Wh", "max_time": "max_time_s", "max_cost": "max_cost", "max_soc": "max_soc"}


def transaction_limit(limit: dict) -> TransactionLimit:
    """A 2.1 TransactionLimitType (snake_case dict, schema-checked) as the core's TransactionLimit."""
    return TransactionLimit(**{ours: limit[theirs] for theirs, ours in _FIELDS.items() if limit.get(theirs) is not None})


def limit_type(limit: TransactionLimit) -> dict:
    """The core's TransactionLimit as a 2.1 TransactionLimitType (snake_case; only the kinds set)."""
    return {theirs: getattr(limit, ours) for theirs, ours in _FIELDS.items() if getattr(limit, ours) is not None}


class TransactionLimitCodec:
    """Mixed into the 2.1 TransactionEvent codec (a ``CoreCodec``, whose ``_station`` is a StationApi)."""

    def encode(self, item: OutboxItem):
        """The CALL as the codec makes it; a transaction's event also says the limit set on it."""
        request = super().encode(item)
        if request is None or item.group is None or getattr(request, "transaction_info", None) is None:
            return request
        limit = self._station.transaction_limit(item.payload["ref"])
        if limit is not None and limit_type(limit):
            request.transaction_info["transaction_limit"] = limit_type(limit)
        return request

    def after_commit(self, item: OutboxItem, result) -> None:
        """As the codec does; a transactionLimit in the answer is set on the transaction (if it runs)."""
        super().after_commit(item, result)
        given = getattr(result, "transaction_limit", None)
        if not given or item.group is None:
            return
        ref = item.payload["ref"]
        limit = transaction_limit(given)
        if not self._station.set_transaction_limit(ref, limit):
            log.info("transaction %s: transactionLimit %s ignored: the transaction no longer runs", ref, given)
            return
        if limit.max_cost is not None:
            log.info("transaction %s: maxCost %s, against the station's own cost of it (its tariff's currency)",
                     ref, limit.max_cost)
        if limit.max_soc is not None:
            log.warning("transaction %s: maxSoC %s%% is ignored: the EV's state of charge needs ISO 15118",
                        ref, limit.max_soc)
