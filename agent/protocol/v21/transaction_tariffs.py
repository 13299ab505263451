"""OCPP 2.1 block I: the tariff of one transaction: ChangeTransactionTariff, and a driver tariff in an
AuthorizeResponse.

The station does the work (``agent.core.charging.station_tariffs``, through StationApi); this module
words it:

* ChangeTransactionTariff: the running transaction is priced with the new tariff from the moment it is
  accepted; what it used until then stays priced with the tariff it had, and the Ended event's
  ``costDetails`` gives each part its own charging period with its ``tariffId``. Answers: Accepted;
  TxNotFound (no such transaction runs here); NoCurrencyChange (the new tariff's currency differs from
  the one the transaction is priced in); and, for the tariff itself, what SetDefaultTariff would answer
  (Rejected, TooManyElements, ConditionNotSupported) with the reason.
* AuthorizeResponse ``tariff``: prices the idToken's next transaction from its start instead of the
  EVSE's default tariff. One the station cannot price is not applied (the default tariff stays), and
  the log says why. (2.1's TransactionEventResponse has no tariff field: the schema has none.)
"""

from __future__ import annotations

import contextvars
import logging

from ocpp.routing import on
from ocpp.v21 import call_result
from ocpp.v21.enums import Action

from agent.core.charging.tariffs import TariffRefused

log = logging.getLogger("agent.ocpp21")

#: The idToken whose Authorize answer is being read (``id_token_info`` has only the answer).
_AUTHORIZING: contextvars.ContextVar[str | None] = contextvars.ContextVar("authorizing", default=None)


class TransactionTariffHandlers21:
    """Mixed into the 2.1 adapter (before the 2.0.1 adapter, whose Authorize reading it extends)."""

    @on(Action.change_transaction_tariff)
    def on_change_transaction_tariff(self, transaction_id: str, tariff: dict, **_):
        """ChangeTransactionTariff: price the running transaction with ``tariff`` from now on, or say why not."""
        try:
            status = self.core.station.change_transaction_tariff(transaction_id, tariff)
        except TariffRefused as refused:
            log.warning("ChangeTransactionTariff %s for %s refused: %s", tariff.get("tariff_id"), transaction_id,
                        refused.reason)
            return call_result.ChangeTransactionTariff(status=refused.status, status_info={
                "reason_code": "UnknownTransaction" if refused.status == "TxNotFound" else "UnsupportedParam",
                "additional_info": refused.reason[:1024]})
        return call_result.ChangeTransactionTariff(status=status)

    async def _authorize_online(self, id_token: str):
        """As the base does; the answer's driver tariff (if any) is then read for ``id_token``."""
        token = _AUTHORIZING.set(str(id_token))
        try:
            return await super()._authorize_online(id_token)
        finally:
            _AUTHORIZING.reset(token)

    def id_token_info(self, result):
        """As in 2.0.1; a driver tariff in an accepted answer prices that idToken's next transaction."""
        info = super().id_token_info(result)
        tariff = getattr(result, "tariff", None)
        id_token = _AUTHORIZING.get()
        if tariff and id_token is not None and info is not None and info.accepted:
            try:
                self.core.station.offer_driver_tariff(id_token, tariff)
            except TariffRefused as refused:
                log.warning("Authorize: the driver tariff %s is not applied, the default tariff stays: %s",
                            tariff.get("tariff_id"), refused.reason)
        return info
