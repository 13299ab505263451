"""OCPP 2.1 block I: default tariffs (SetDefaultTariff, GetTariffs, ClearTariffs) and the local cost.

The tariffs and the arithmetic are the core's (``agent.core.charging.tariffs``); this module words
them. A transaction is priced with its EVSE's default tariff as it was when its Started event went
out (``tariffId`` in that event's transactionInfo), or its driver's tariff, or the tariff a
ChangeTransactionTariff gave it (``transaction_tariffs``); its Ended event carries the ``costDetails``
the station computed, one charging period per tariff. The cost is computed from the journal when the
event is encoded, so it goes out with the queued events after an offline session as well. Money leaves the core as Decimal rounded to
cents and becomes a JSON number only here (the ``ocpp`` library would round a Decimal to 1 decimal).
"""

from __future__ import annotations

import logging
from dataclasses import fields

from ocpp.routing import on
from ocpp.v21 import call as call21
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.core.charging.tariffs import Cost, PricedPeriod, TariffBook, TariffRefused, Usage
from agent.core.charging.transactions import ENDED, METER_VALUES, STARTED, STATUS
from agent.runtime.clock import format_iso

log = logging.getLogger("agent.ocpp21")


def tariff_book(core) -> TariffBook:
    """The tariff book on the core's state store (CoreServices ``core``)."""
    return TariffBook(core.store, evse_ids=core.station.evse_ids)


class TariffHandlers21:
    """Mixed into the 2.1 adapter: the tariff messages, and the tariff book for the transaction codec."""

    def tariff_book(self) -> TariffBook:
        """The default tariffs, kept in the state store."""
        return tariff_book(self.core)

    @on(Action.set_default_tariff)
    def on_set_default_tariff(self, evse_id: int, tariff: dict, **_):
        """SetDefaultTariff: install the tariff on the EVSE (0: every EVSE), or say why not."""
        if evse_id != 0 and not self.core.station.has_evse(evse_id):
            return call_result.SetDefaultTariff(status="Rejected", status_info={
                "reason_code": "UnknownEvse", "additional_info": f"no EVSE {evse_id}"})
        try:
            status = self.tariff_book().set_default(evse_id, tariff, now=self.clock.time())
        except TariffRefused as refused:
            log.warning("SetDefaultTariff %s refused: %s", tariff.get("tariff_id"), refused.reason)
            return call_result.SetDefaultTariff(status=refused.status, status_info={
                "reason_code": "UnsupportedParam", "additional_info": refused.reason[:1024]})
        return call_result.SetDefaultTariff(status=status)

    @on(Action.get_tariffs)
    def on_get_tariffs(self, evse_id: int, **_):
        """GetTariffs: the default tariffs of the EVSE (0: of every EVSE), one assignment per tariff."""
        if evse_id != 0 and not self.core.station.has_evse(evse_id):
            return call_result.GetTariffs(status="Rejected", status_info={
                "reason_code": "UnknownEvse", "additional_info": f"no EVSE {evse_id}"})
        assignments: dict[str, dict] = {}
        for evse, tariff in sorted(self.tariff_book().defaults().items()):
            if evse_id in (0, evse):
                entry = assignments.setdefault(tariff["tariff_id"], {
                    "tariff_id": tariff["tariff_id"], "tariff_kind": "DefaultTariff", "evse_ids": [],
                    **({"valid_from": tariff["valid_from"]} if tariff.get("valid_from") else {})})
                entry["evse_ids"].append(evse)
        if not assignments:
            return call_result.GetTariffs(status="NoTariff")
        return call_result.GetTariffs(status="Accepted", tariff_assignments=list(assignments.values()))

    @on(Action.clear_tariffs)
    def on_clear_tariffs(self, tariff_ids: list[str] | None = None, evse_id: int | None = None, **_):
        """ClearTariffs: remove the named default tariffs (all when none are named) at the EVSE (or every EVSE)."""
        removed = self.tariff_book().clear(tariff_ids=tariff_ids, evse_id=evse_id)
        results = [{"tariff_id": tid, "status": "Accepted" if done else "NoTariff"} for tid, done in removed]
        return call_result.ClearTariffs(clear_tariffs_result=results or [{"status": "NoTariff"}])


class CostCodec21:
    """Mixed into the 2.1 transaction codec: ``tariffId`` at the start, ``costDetails`` so far in each periodic
    Updated event (the running cost) and in full at the end."""

    tariffs: TariffBook | None = None  # set by the adapter's transaction_codec

    def encode(self, item):
        """The CALL for the record, with what the tariff adds to a transaction's events."""
        request = super().encode(item)
        if self.tariffs is None or request is None or item.group is None:
            return request
        p = item.payload
        if item.action == STARTED:
            tariff = self.tariffs.bind(p["ref"], p["evse_id"])
            if tariff:
                request.transaction_info["tariff_id"] = tariff["tariff_id"]
        elif item.action == STATUS:
            self.tariffs.note_state(p["ref"], seq_no=p["seq_no"], timestamp=p["timestamp"],
                                    charging=p.get("charging_state") == "Charging" and p.get("ev_connected", True))
        elif item.action == ENDED:
            return self._priced(request, p)
        elif item.action == METER_VALUES:
            return self._running_cost(request, p)
        return request

    def _running_cost(self, request, p: dict):
        """A periodic Updated event also says the cost so far (I: running cost), from the sample's register."""
        tx = self._journal.get(p["ref"])
        register = _energy_register_Wh(p.get("sample") or {})
        if tx is None or register is None:
            return request
        priced = self.tariffs.cost(p["ref"], p["evse_id"], started_at=tx.started_at,
                                   stopped_at=p["sample"]["timestamp"], energy_Wh=max(0.0, register - tx.meter_start_Wh))
        return request if priced is None else _with_cost(request, *priced)

    def _priced(self, request, p: dict):
        tx = self._journal.get(p["ref"])
        if tx is None:
            return request
        priced = self.tariffs.cost(p["ref"], p["evse_id"], started_at=tx.started_at, stopped_at=p["timestamp"],
                                   energy_Wh=max(0.0, p["meter_stop_Wh"] - tx.meter_start_Wh))
        if priced is None:
            return request
        request.transaction_info["tariff_id"] = priced[0].tariff_id  # the tariff it ended with
        return _with_cost(request, *priced)

    def after_commit(self, item, result) -> None:
        """As before; the tariff of a transaction whose Ended event the CSMS has is forgotten."""
        super().after_commit(item, result)
        if self.tariffs is not None and item.group is not None and item.action == ENDED:
            self.tariffs.release(item.payload["ref"])


def _with_cost(request, cost: Cost, usage: Usage, periods: list[PricedPeriod]):
    """The TransactionEvent (2.0.1's or 2.1's dataclass) as a 2.1 one with ``costDetails``."""
    args = {f.name: getattr(request, f.name) for f in fields(request)}
    args["cost_details"] = cost_details(cost, usage, periods=periods)
    return call21.TransactionEvent(**args)


def _energy_register_Wh(sample: dict) -> float | None:
    """The total Energy.Active.Import.Register of an outbox sample, in Wh, or None if it has none."""
    for value in sample.get("values") or []:
        if value.get("measurand") == "Energy.Active.Import.Register" and not value.get("phase"):
            return value["value"] * (1000 if value.get("unit") == "kWh" else 1)
    return None


_PART_NAMES = {"fixed_fee": "fixed", "energy": "energy", "charging_time": "charging_time", "idle_time": "idle_time"}


def cost_details(cost: Cost, usage: Usage, *, periods: list[PricedPeriod]) -> dict:
    """A 2.1 CostDetailsType (snake_case) for the cost of a whole transaction: one charging period per tariff
    it was priced with (more than one after ChangeTransactionTariff), each with its tariffId and usage."""
    total_cost = {"currency": cost.currency, "type_of_cost": cost.type_of_cost,
                  "total": _price(cost.total_excl_tax, cost.total_incl_tax)}
    for part, priced in cost.parts.items():
        total_cost[_PART_NAMES[part]] = _price(priced.excl_tax, priced.incl_tax)
    energy = float(usage.energy_Wh)
    return {
        "charging_periods": [{
            "start_period": format_iso(period.started_at), "tariff_id": period.cost.tariff_id, "dimensions": [
                {"type": "Energy", "volume": float(period.usage.energy_Wh)},
                {"type": "ChargingTime", "volume": period.usage.charging_s},
                {"type": "IdleTIme", "volume": period.usage.idle_s}]}  # sic: 2.1's spelling of the enum value
            for period in periods],
        "total_cost": total_cost,
        "total_usage": {"energy": energy, "charging_time": usage.charging_s, "idle_time": usage.idle_s},
    }


def _price(excl, incl) -> dict:
    """Money as JSON numbers: a Decimal rounded to cents has an exact shortest float text."""
    return {"excl_tax": float(excl), **({"incl_tax": float(incl)} if incl is not None else {})}
