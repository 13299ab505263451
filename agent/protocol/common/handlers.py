"""CSMS requests worded alike in OCPP 1.6 and 2.0.1: the same fields and the same answers.

Each handler answers through the adapter's own message classes
(``self._call_result``), so one method serves both versions; a version whose
wording differs overrides it in its adapter.
"""

from __future__ import annotations

import logging

from ocpp.routing import on

log = logging.getLogger("agent.ocpp")


class SharedHandlers:
    """ClearCache, DataTransfer and CancelReservation; mixed into the adapter base (``AdapterBase``)."""

    @on("ClearCache")
    def on_clear_cache(self, **_):
        """ClearCache: Rejected when the authorization cache is disabled."""
        return self._call_result.ClearCache(status="Accepted" if self.core.authorizer.clear_cache() else "Rejected")

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id: str, **_):
        """DataTransfer: no vendor extensions are installed."""
        return self._call_result.DataTransfer(status="UnknownVendorId")

    @on("CancelReservation")
    async def on_cancel_reservation(self, reservation_id: int, **_):
        """CancelReservation: Accepted if it existed."""
        found = await self.core.station.cancel_reservation(reservation_id)
        return self._call_result.CancelReservation(status="Accepted" if found else "Rejected")

    def remote_start_refused(self, action: str, *, target_id: int | None, target_name: str) -> bool:
        """True (and a log line saying why) when a remote start is Rejected before anything else is asked.

        Neither version allows it while the registration is Pending or Rejected (1.6 §4.2,
        2.0.1 B02.FR.05), nor for target 0, the station itself rather than a connector or EVSE.
        """
        if target_id == 0:
            reason = f"{target_name} 0"
        elif self.registration in ("Pending", "Rejected"):
            reason = f"registration {self.registration}"
        else:
            return False
        log.warning("%s rejected: %s", action, reason)
        return True
