"""The running cost of each priced transaction, computed by the station itself (OCPP 2.1 local cost, version-neutral).

While a transaction runs with a tariff (``agent.core.charging.tariffs.TariffBook``: the tariff the
transaction is priced with), each reading the EVSE's meter publishes (every poll, about once a second)
prices the usage so far with :meth:`~agent.core.charging.tariffs.TariffBook.cost`, exactly as the Ended event
will, and hands the total (including tax when the tariff has tax rates) to ``show``: the display's
running cost. No timer and no reading of our own: a listener on the meter, as the transaction limits
use. A transaction without a tariff costs nothing to follow beyond one look-up per reading.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal

from agent.core.charging.tariffs import Cost, TariffBook

log = logging.getLogger("agent.station")

#: ISO 4217 minor units where they are not 2 (the currencies a tariff may name; any other: cents).
_MINOR_UNITS = {"BHD": 3, "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3, "JPY": 0,
                "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3, "UGX": 0,
                "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0}


def money_text(amount: Decimal, currency: str) -> str:
    """``amount`` as a driver reads it: the currency code, then the amount to the currency's minor unit
    ("EUR 3.47", "JPY 512", "KWD 1.250"); Decimal throughout, rounded half up."""
    places = _MINOR_UNITS.get(currency.upper(), 2)
    return f"{currency} {amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)}"


def driver_total(cost: Cost) -> Decimal:
    """What the driver pays: the total including tax when the tariff states taxes, else excluding."""
    return cost.total_excl_tax if cost.total_incl_tax is None else cost.total_incl_tax


class RunningCost:
    """Follows the station's transactions and tells ``show(transaction ref, total, currency)`` their cost so far.

    ``station`` is the ChargingStation (its EVSE machines, HAL and clock); ``tariffs`` the tariff book
    the transaction codec prices the events with, so the display and the events agree.
    """

    def __init__(self, station, *, tariffs: TariffBook, show: Callable[[str, Decimal, str], object]):
        self._station = station
        self._tariffs = tariffs
        self._show = show
        self._followed: dict[int, tuple[str, object, Callable]] = {}  # EVSE id -> (ref, meter, listener)
        self._closed = False
        station.add_listener(self.follow)
        self.follow()  # a transaction may run already (resumed after a reset)

    def follow(self) -> None:
        """A station change: listen to the meter of each EVSE whose transaction runs, and to no other."""
        if self._closed:
            return  # the station keeps its listeners: a closed one just stops acting
        for evse_id, machine in self._station.evses.items():
            tx = getattr(machine, "transaction", None)
            ref = tx.ref if tx is not None else None
            followed = self._followed.get(evse_id)
            if followed is not None and followed[0] == ref:
                continue
            if followed is not None:
                followed[1].remove_listener(followed[2])
                del self._followed[evse_id]
            if ref is not None:
                meter = self._station.hal.evse(evse_id).meter
                listener = self._listener(machine, ref)
                meter.add_listener(listener)
                self._followed[evse_id] = (ref, meter, listener)
                listener(evse_id, meter.last_reading)  # the cost from the start: the fixed fee, if any

    def close(self) -> None:
        """Stop listening to every meter (the station stops)."""
        self._closed = True
        for _ref, meter, listener in self._followed.values():
            meter.remove_listener(listener)
        self._followed.clear()

    def _listener(self, machine, ref: str) -> Callable:
        def reading(_evse_id: int, value) -> None:
            try:
                self._price(machine, ref, value)
            except Exception:  # the display's cost must never cost a meter poll or a transaction
                log.exception("running cost of transaction %s", ref)
        return reading

    def _price(self, machine, ref: str, reading) -> None:
        tx = machine.transaction
        if reading is None or tx is None or tx.ref != ref:
            return
        # TariffBook.cost, as the events: each period with its tariff after a ChangeTransactionTariff.
        priced = self._tariffs.cost(ref, machine.evse_id, started_at=tx.started_at,
                                    stopped_at=self._station.clock.time(),
                                    energy_Wh=max(0.0, reading.energy_import_Wh - tx.meter_start_Wh))
        if priced is None:
            return
        cost = priced[0]
        self._show(ref, driver_total(cost), cost.currency)
