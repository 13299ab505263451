"""The tariffs of running transactions: a tariff changed while one runs, and a driver's own tariff.

A mixin of :class:`agent.core.charging.station.ChargingStation` (through ``StationTransactionLimits``,
whose cost limit prices with the same tariffs). Version-neutral: OCPP 2.1 ChangeTransactionTariff and
the ``tariff`` of an AuthorizeResponse come here, and a later protocol could use the same.

* :meth:`StationTariffs.change_transaction_tariff`: the running transaction is priced with the new
  tariff from now on; what it used until now stays priced with the tariff it had (its own charging
  period in the cost, ``TariffBook.change``); the change is reported as a state of the transaction
  (trigger TariffChanged).
* :meth:`StationTariffs.offer_driver_tariff`: a tariff given with an idToken's authorization prices that
  idToken's next transaction (started within ``DRIVER_TARIFF_WAIT_S``) from its start, instead of the
  EVSE's default tariff. A tariff the station cannot price is refused (TariffRefused) and the default
  tariff stays.

It uses the station's ``store``, ``journal``, ``evses``, ``hal``, ``clock``, ``evse_ids`` and ``add_listener``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.core.charging.tariffs import TariffBook

log = logging.getLogger("agent.station")

#: The trigger of the record that says a transaction's tariff changed (OCPP 2.1 TriggerReason).
TARIFF_CHANGED = "TariffChanged"


class StationTariffs:
    """The ``StationApi`` members for the tariffs of running transactions (see the module docstring)."""

    def tariff_book(self) -> TariffBook:
        """The station's tariff book (default tariffs, and the tariff of each transaction) on its store."""
        # At first use: a station that never prices (1.6, 2.0.1) never loads the tariff arithmetic, which
        # the idle daemon's RSS would carry for nothing (make bench, core2x_boot_idle).
        from agent.core.charging.tariffs import TariffBook

        return TariffBook(self.store, evse_ids=self.evse_ids)

    def change_transaction_tariff(self, ref: str, tariff: dict) -> str:
        """Price running transaction ``ref`` with ``tariff`` from now on: "Accepted", or TariffRefused with
        TxNotFound (it does not run here), NoCurrencyChange, or the refusals of a default tariff."""
        machine = self._running_machine(ref)
        if machine is None:
            from agent.core.charging.tariffs import TariffRefused

            raise TariffRefused("TxNotFound", f"no transaction {ref} runs here")
        tx = machine.transaction
        reading = self.hal.evse(machine.evse_id).meter.last_reading
        register = reading.energy_import_Wh if reading is not None else tx.last_meter_Wh
        now = self.clock.time()
        self.tariff_book().change(ref, tariff, at=now, energy_Wh=max(0.0, register - tx.meter_start_Wh))
        # Reported as a state of the transaction (2.0.1/2.1 TransactionEvent Updated, triggerReason TariffChanged).
        self.journal.add_status(ref, machine.status.value, timestamp=now, trigger=TARIFF_CHANGED)
        log.info("transaction %s: priced with tariff %s from now on", ref, tariff["tariff_id"])
        return "Accepted"

    def offer_driver_tariff(self, id_token: str, tariff: dict) -> None:
        """The tariff the CSMS gave with ``id_token``'s authorization prices its next transaction (see the
        module docstring); TariffRefused if the station cannot price it (then the default tariff applies)."""
        self.tariff_book().offer_driver_tariff(id_token, tariff, now=self.clock.time())
        if not self.__dict__.get("_driver_tariffs_followed"):
            self._driver_tariffs_followed = True
            self.add_listener(self._apply_driver_tariffs)
        self._apply_driver_tariffs()  # its transaction may run already (started at plug-in)

    def _apply_driver_tariffs(self) -> None:
        """A station change: a transaction whose idToken has a driver tariff waiting is priced with it."""
        book = None
        for machine in self.evses.values():
            tx = machine.transaction
            if tx is None or not tx.id_token:
                continue
            book = book or self.tariff_book()
            tariff = book.take_driver_tariff(tx.ref, machine.evse_id, tx.id_token, now=self.clock.time())
            if tariff is not None:
                log.info("transaction %s: priced with the driver tariff %s", tx.ref, tariff["tariff_id"])

    def _running_machine(self, ref: str):
        """The EVSE machine whose transaction ``ref`` runs, or None."""
        return next((m for m in self.evses.values() if m.transaction is not None and m.transaction.ref == ref), None)
