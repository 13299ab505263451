"""Transaction limits: the station ends a transaction by itself once it has delivered so much energy,
lasted so long or cost so much (OCPP 2.1 ``transactionLimit``; version-neutral here, so any protocol may
set one).

A CSMS sets the limit of a running transaction (2.1: in its answer to a TransactionEvent); a later one
replaces it as a whole, since the CSMS states the limit entire each time. What the station can measure
it enforces, and the stop goes through the EVSE machine as a ``Stop`` input like any other, so
TxStopPoint, the closing meter value and the cable release are as always:

* ``max_energy_Wh``: the energy since the transaction began, from the meter's published readings (a
  listener on the EVSE's meter, called at every poll: no reading of our own, no polling loop). Reached:
  ``StopReason.ENERGY_LIMIT_REACHED``.
* ``max_time_s``: from the transaction's start, one timer. Reached: ``StopReason.TIME_LIMIT_REACHED``.
* ``max_cost``: the station's own cost of the transaction (``agent.core.charging.tariffs``: the tariff it
  is priced with, on the energy of each published reading and the time so far), what the driver pays:
  including tax when the tariff states taxes. Reached: ``StopReason.COST_LIMIT_REACHED``. A transaction
  no tariff prices costs nothing here, so its cost limit is kept and reported but never reached.
* ``max_soc``: kept and reported, never enforced: the EV's state of charge comes only over ISO 15118,
  which an AC station on the control pilot alone never learns.

A limit is persisted in the state store while its transaction runs (and dropped when the journal says
it ended), so a restart that keeps the transaction (2.1 Reset ImmediateAndResume,
``station_resume``) arms it again: the time still counted from the transaction's start, the energy from
its meter start. Any other restart ends the transaction anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import asdict, dataclass
from decimal import Decimal

from agent.core.charging.evse_inputs import Stop
from agent.core.charging.model import StopReason
from agent.core.charging.station_tariffs import StationTariffs
from agent.errors import StoreError

log = logging.getLogger("agent.station")

#: Limits remembered for reporting after their transaction ended (its Ended event may go out later).
_KEEP = 64
#: + transaction ref: the limit of a running transaction, kept across a restart that resumes it.
_STORE_KEY = "limits.tx."


@dataclass(frozen=True, kw_only=True)
class TransactionLimit:
    """The limit of one transaction; None: no limit of that kind."""

    max_energy_Wh: float | None = None
    max_time_s: int | None = None
    max_cost: float | None = None  # in the tariff's currency; reached by the station's own cost
    max_soc: int | None = None  # percent; never enforced (needs ISO 15118)

    @property
    def enforced(self) -> tuple[str, ...]:
        """The kinds of this limit the station enforces ("energy", "time", "cost")."""
        return tuple(kind for kind, value in (("energy", self.max_energy_Wh), ("time", self.max_time_s),
                                              ("cost", self.max_cost)) if value is not None)


class _Watch:
    """Enforces one limit on one running transaction: a meter listener and a timer, until cancelled.

    ``cost_of(reading)`` is the transaction's cost so far with that reading (None: nothing prices it).
    """

    def __init__(self, *, machine, meter, limit: TransactionLimit, ref: str, meter_start_Wh: float,
                 remaining_s: float | None, cost_of=None):
        self._machine, self._meter, self._limit, self._ref = machine, meter, limit, ref
        self._energy_until = None if limit.max_energy_Wh is None else meter_start_Wh + limit.max_energy_Wh
        self._max_cost = None
        if limit.max_cost is not None and cost_of is not None:
            from agent.core.charging.tariffs import dec  # at first use: see StationTariffs.tariff_book

            self._max_cost = dec(limit.max_cost)
        self._cost_of = cost_of
        self._listening = self._energy_until is not None or self._max_cost is not None
        self._timer = None
        self.done = False
        if remaining_s is not None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, remaining_s), self._reached,
                                                                StopReason.TIME_LIMIT_REACHED)
        if self._listening:
            meter.add_listener(self._reading)
            self._reading(machine.evse_id, meter.last_reading)  # perhaps delivered already

    def _reading(self, _evse_id: int, reading) -> None:
        if reading is None or self.done:
            return
        if self._energy_until is not None and reading.energy_import_Wh >= self._energy_until:
            self._reached(StopReason.ENERGY_LIMIT_REACHED)
        elif self._max_cost is not None:
            try:
                cost = self._cost_of(reading)
            except Exception:  # a pricing bug must never cost a meter poll: the other limits still hold
                log.exception("transaction %s: cost limit not checked", self._ref)
                return
            if cost is not None and cost >= self._max_cost:
                self._reached(StopReason.COST_LIMIT_REACHED)

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
        if self._listening:
            self._meter.remove_listener(self._reading)


class TransactionLimits:
    """The limits of the station's transactions: set, enforced while the transaction runs, remembered."""

    def __init__(self, station):
        self._station = station  # agent.core.charging.station.ChargingStation
        self._limits: OrderedDict[str, TransactionLimit] = OrderedDict()
        self._watches: dict[str, _Watch] = {}
        self._unpriced: set[str] = set()  # transactions whose cost limit was said to be unenforceable
        self._persisted: set[str] = set()  # transactions whose limit is in the store
        station.add_listener(self._follow)

    def set(self, ref: str, limit: TransactionLimit) -> bool:
        """Enforce ``limit`` on running transaction ``ref`` from now on; False if it does not run here."""
        if not self._arm(ref, limit):
            return False
        self._station.store.put(_STORE_KEY + ref, asdict(limit))  # for a restart that resumes it
        self._persisted.add(ref)
        return True

    def resume(self, ref: str) -> TransactionLimit | None:
        """Arm again the persisted limit of transaction ``ref``, resumed after a restart; the limit, or None."""
        saved = self._station.store.get(_STORE_KEY + ref)
        if not saved:
            return None
        limit = TransactionLimit(**saved)
        if not self._arm(ref, limit):
            return None
        self._persisted.add(ref)
        return limit

    def _arm(self, ref: str, limit: TransactionLimit) -> bool:
        machine = self._station._running_machine(ref)
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
                                        limit=limit, ref=ref, meter_start_Wh=tx.meter_start_Wh, remaining_s=remaining,
                                        cost_of=lambda reading: self._cost_so_far(machine, ref, reading))
        log.info("transaction %s: limit %s (enforced: %s)", ref, limit, ", ".join(limit.enforced) or "nothing")
        return True

    def _cost_so_far(self, machine, ref: str, reading) -> Decimal | None:
        """What transaction ``ref`` costs with ``reading`` (what the driver pays), or None if no tariff prices it."""
        tx = machine.transaction
        if tx is None or tx.ref != ref:
            return None
        priced = self._station.tariff_book().cost(
            ref, machine.evse_id, started_at=tx.started_at, stopped_at=self._station.clock.time(),
            energy_Wh=max(0.0, reading.energy_import_Wh - tx.meter_start_Wh))
        if priced is None:
            if ref not in self._unpriced:
                self._unpriced.add(ref)
                log.warning("transaction %s: no tariff prices it, so its cost limit is never reached", ref)
            return None
        cost = priced[0]
        return cost.total_excl_tax if cost.total_incl_tax is None else cost.total_incl_tax

    def forget(self, ref: str) -> None:
        """Drop the persisted limit of transaction ``ref``, which ended without running here (at start-up)."""
        try:
            self._station.store.delete(_STORE_KEY + ref)
        except StoreError as exc:  # a leftover key costs a few bytes, never a start
            log.warning("transaction %s: its limit stays in the store: %s", ref, exc)
        self._persisted.discard(ref)

    def get(self, ref: str) -> TransactionLimit | None:
        """The limit last set on transaction ``ref`` (running or recently ended), or None."""
        return self._limits.get(ref)

    def _follow(self) -> None:
        """A station change: drop the watches of transactions that no longer run, and the persisted limits
        of those the journal says ended (a stop of the agent leaves them open, to resume)."""
        if not self._watches and not self._persisted:
            return
        running = {m.transaction.ref for m in self._station.evses.values() if m.transaction is not None}
        for ref in [r for r, w in self._watches.items() if r not in running or w.done]:
            self._watches.pop(ref).cancel()
        for ref in [r for r in self._persisted if r not in running]:
            tx = self._station.journal.get(ref)
            if tx is None or not tx.active:
                self._station.store.delete(_STORE_KEY + ref)
                self._persisted.discard(ref)
                self._unpriced.discard(ref)

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
