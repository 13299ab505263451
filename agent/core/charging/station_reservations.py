"""The station's reservations: ReserveNow, CancelReservation, expiry, and a reservation used by its holder.

A mixin of :class:`agent.core.charging.station.ChargingStation`, kept apart so each file has one concern.
The reservations themselves (the model and the persisted book) are in :mod:`.reservations`; this part
decides whether one can be made, hands it to the EVSE it holds, and ends it on expiry (a timer, no
polling), on cancellation or when a transaction starts on it. It uses the station's ``evses``,
``reservations``, ``clock``, ``port``, ``_expiry_timers``, ``_free_beyond_reservations`` and ``_spawn``.
"""

from __future__ import annotations

import asyncio

from agent.core.charging import evse_inputs
from agent.core.charging.evse_inputs import PLUGGED
from agent.core.charging.model import ConnectorStatus
from agent.core.charging.reservations import Reservation, ReserveResult


class StationReservations:
    """ReserveNow and CancelReservation for one EVSE or any, and the end of every reservation."""

    def _restore_reservations(self) -> None:
        """After a restart: the persisted reservations hold their EVSEs again, and expire when they did."""
        for reservation in self.reservations:
            if reservation.evse_id in self.evses:
                self.evses[reservation.evse_id].reservation = reservation
            self._arm_expiry(reservation)

    async def reserve(self, reservation: Reservation, *, zero_supported: bool = True) -> ReserveResult:
        """ReserveNow for one EVSE, or any (evse_id 0): Accepted, Faulted, Occupied, Unavailable or Rejected."""
        if reservation.expiry <= self.clock.time():
            return ReserveResult.REJECTED
        previous = self.reservations.get(reservation.reservation_id)
        if previous is not None:  # same id: the new one replaces it
            await self._drop_reservation(previous, status=None)
        verdict = self._reservable(reservation, zero_supported=zero_supported)
        if verdict is not ReserveResult.ACCEPTED:
            return verdict
        self.reservations.add(reservation)
        if reservation.evse_id:
            await self.evses[reservation.evse_id].submit(evse_inputs.Reserve(reservation=reservation))
        self._arm_expiry(reservation)
        return ReserveResult.ACCEPTED

    def _reservable(self, reservation: Reservation, *, zero_supported: bool) -> ReserveResult:
        if reservation.evse_id == 0:
            if not zero_supported:
                return ReserveResult.REJECTED
            return ReserveResult.ACCEPTED if self._free_beyond_reservations() else ReserveResult.OCCUPIED
        machine = self.evses.get(reservation.evse_id)
        if machine is None:
            return ReserveResult.REJECTED
        if machine.status is ConnectorStatus.FAULTED:
            return ReserveResult.FAULTED
        if not machine.operative:
            return ReserveResult.UNAVAILABLE
        busy = machine.transaction or machine.authorization or machine.reservation or machine.pilot in PLUGGED
        return ReserveResult.OCCUPIED if busy else ReserveResult.ACCEPTED

    async def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation: True if it existed."""
        reservation = self.reservations.get(reservation_id)
        if reservation is None:
            return False
        await self._drop_reservation(reservation, status=None)
        return True

    async def _drop_reservation(self, reservation: Reservation, *, status: str | None) -> None:
        self.reservations.remove(reservation.reservation_id)
        timer = self._expiry_timers.pop(reservation.reservation_id, None)
        if timer is not None:
            timer.cancel()
        if reservation.evse_id in self.evses:
            await self.evses[reservation.evse_id].submit(
                evse_inputs.Unreserve(reservation_id=reservation.reservation_id))
        if status and self.port is not None:
            self.port.reservation_ended(reservation.reservation_id, status)

    def _arm_expiry(self, reservation: Reservation) -> None:
        delay = max(0.0, reservation.expiry - self.clock.time())
        loop = asyncio.get_running_loop()
        self._expiry_timers[reservation.reservation_id] = loop.call_later(
            delay, lambda: self._spawn(self._drop_reservation(reservation, status="Expired"), name="expiry"))

    def _reservation_used(self, reservation_id: int) -> None:
        """A transaction started on the reservation: it is fulfilled, not expired."""
        self.reservations.remove(reservation_id)
        timer = self._expiry_timers.pop(reservation_id, None)
        if timer is not None:
            timer.cancel()
