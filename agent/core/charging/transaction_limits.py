"""Transaction limits: the station ends a transaction by itself once it has delivered so much energy or
lasted so long (OCPP 2.1 ``transactionLimit``; version-neutral here, so any protocol may set one).

A CSMS sets the limit of a running transaction (2.1: in its answer to a TransactionEvent); a later one
replaces it as a whole, since the CSMS states the limit entire each time. What the station can measure
it enforces, and the stop goes through the EVSE machine as a ``Stop`` input like any other, so
TxStopPoint, the closing meter value and the cable release are as always:

* ``max_energy_Wh``: the energy since the transaction began, from the meter's published readings (a
  listener on the EVSE's meter, called at every poll: no reading of our own, no polling loop). Reached:
  ``StopReason.ENERGY_LIMIT_REACHED``.
* ``max_time_s``: from the transaction's start, one timer. Reached: ``StopReason.TIME_LIMIT_REACHED``.
* ``max_cost``: kept and reported, not enforced: enforcing it needs the station to calculate the cost
  itself (local cost calculation), which it does not yet; it is enforced once that exists.
* ``max_soc``: kept and reported, never enforced: the EV's state of charge comes only over ISO 15118,
  which an AC station on the control pilot alone never learns.

Limits live in memory: a restart of the agent ends its transactions anyway (with Reboot or PowerLoss).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass

from agent.core.charging.evse_inputs import Stop
from agent.core.charging.model import StopReason
from agent.core.charging.station_tariffs import StationTariffs

log = logging.getLogger("agent.station")

#: Limits remembered for reporting after their transaction ended (its Ended event may go out later).
_KEEP = 64


@dataclass(frozen=True, kw_only=True)
class TransactionLimit:
    """The limit of one transaction; None: no limit of that kind."""

    max_energy_Wh: float | None = None
    max_time_s: int | None = None
    max_cost: float | None = None  # in the tariff's currency; not enforced without local cost calculation
    max_soc: int | None = None  # percent; never enforced (needs ISO 15118)

    @property
    def enforced(self) -> tuple[str, ...]:
        """The kinds of this limit the station enforces ("energy", "time")."""
        return tuple(kind for kind, value in (("energy", self.max_energy_Wh), ("time", self.max_time_s))
                     if value is not None)


class _Watch:
    """Enforces one limit on one running transaction: a meter listener and a timer, until cancelled."""

    def __init__(self, *, machine, meter, limit: TransactionLimit, ref: str, meter_start_Wh: float,
                 remaining_s: float | None):
        self._machine, self._meter, self._limit, self._ref = machine, meter, limit, ref
        self._energy_until = None if limit.max_energy_Wh is None else meter_start_Wh + limit.max_energy_Wh
        self._timer = None
        self.done = False
        if remaining_s is not None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, remaining_s), self._reached,
                                                                StopReason.TIME_LIMIT_REACHED)
        if self._energy_until is not None:
            meter.add_listener(self._reading)
            self._reading(machine.evse_id, meter.last_reading)  # perhaps delivered already

    def _reading(self, _evse_id: int, reading) -> None:
        if reading is not None and reading.energy_import_Wh >= self._energy_until:
            self._reached(StopReason.ENERGY_LIMIT_REACHED)

    def _reached(self, reason: StopReason) -> None:
        if self.done:
            return
        self.cancel()
        tx = self._machine.transaction
        if tx is None or tx.ref != self._ref:
            return
        log.info("EVSE %d: transaction %s reached its limit (%s): stopping", self._machine.evse_id, self._ref,
                 reason.value)
        self._machine.submit(Stop(reason=reason))

    def cancel(self) -> None:
        """Stop watching (the transaction ended, or another limit replaced this one)."""
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
        if self._energy_until is not None:
            self._meter.remove_listener(self._reading)


class TransactionLimits:
    """The limits of the station's transactions: set, enforced while the transaction runs, remembered."""

    def __init__(self, station):
        self._station = station  # agent.core.charging.station.ChargingStation
        self._limits: OrderedDict[str, TransactionLimit] = OrderedDict()
        self._watches: dict[str, _Watch] = {}
        station.add_listener(self._follow)

    def set(self, ref: str, limit: TransactionLimit) -> bool:
        """Enforce ``limit`` on running transaction ``ref`` from now on; False if it does not run here."""
        machine = next((m for m in self._station.evses.values()
                        if m.transaction is not None and m.transaction.ref == ref), None)
        if machine is None:
            return False
        old = self._watches.pop(ref, None)
        if old is not None:
            old.cancel()
        self._limits[ref] = limit
        self._limits.move_to_end(ref)
        while len(self._limits) > _KEEP:
            self._limits.popitem(last=False)
        tx = machine.transaction
        remaining = None
        if limit.max_time_s is not None:
            remaining = tx.started_at + limit.max_time_s - self._station.clock.time()
        if limit.enforced:
            self._watches[ref] = _Watch(machine=machine, meter=self._station.hal.evse(machine.evse_id).meter,
                                        limit=limit, ref=ref, meter_start_Wh=tx.meter_start_Wh, remaining_s=remaining)
        log.info("transaction %s: limit %s (enforced: %s)", ref, limit, ", ".join(limit.enforced) or "nothing")
        return True

    def get(self, ref: str) -> TransactionLimit | None:
        """The limit last set on transaction ``ref`` (running or recently ended), or None."""
        return self._limits.get(ref)

    def _follow(self) -> None:
        """A station change: drop the watches of transactions that no longer run."""
        if not self._watches:
            return
        running = {m.transaction.ref for m in self._station.evses.values() if m.transaction is not None}
        for ref in [r for r, w in self._watches.items() if r not in running or w.done]:
            self._watches.pop(ref).cancel()

    def cancel_all(self) -> None:
        """Stop every watch (the station stops)."""
        for watch in self._watches.values():
            watch.cancel()
        self._watches.clear()


class StationTransactionLimits(StationTariffs):
    """Mixed into ``ChargingStation``: the ``StationApi`` members for transaction limits, and for the
    tariffs of running transactions (``StationTariffs``), whose cost the cost limit watches."""

    @property
    def transaction_limits(self) -> TransactionLimits:
        """The station's transaction limits (made at first use)."""
        limits = self.__dict__.get("_transaction_limits")
        if limits is None:
            limits = self._transaction_limits = TransactionLimits(self)
        return limits

    def set_transaction_limit(self, ref: str, limit: TransactionLimit) -> bool:
        """Enforce ``limit`` on running transaction ``ref`` (replacing an earlier one); False if none runs."""
        return self.transaction_limits.set(ref, limit)

    def transaction_limit(self, ref: str) -> TransactionLimit | None:
        """The limit set on transaction ``ref``, to report it, or None."""
        limits = self.__dict__.get("_transaction_limits")
        return limits.get(ref) if limits is not None else None
