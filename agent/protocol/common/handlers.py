"""CSMS requests worded alike in OCPP 1.6 and 2.0.1: the same fields and the same answers.

Each handler answers through the adapter's own message classes
(``self._call_result``), so one method serves both versions; a version whose
wording differs overrides it in its adapter.
"""

from __future__ import annotations

from ocpp.routing import on


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
