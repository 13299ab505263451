"""Reservations: one model for OCPP 1.6 ReserveNow and 2.0.1 ReserveNow.

A reservation holds an EVSE (or, with ``evse_id`` 0, any one EVSE) for one
idToken or its group until it expires, is cancelled, or its holder starts a
transaction. Reservations are persisted, so a restart keeps them and their
expiry.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import asdict, dataclass

log = logging.getLogger("agent.reservations")

_KEY = "station:reservations"


class ReserveResult(str, enum.Enum):
    """The answer to ReserveNow (1.6 ReservationStatus; 2.0.1 ReserveNowStatus)."""

    ACCEPTED = "Accepted"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"


@dataclass(frozen=True)
class Reservation:
    """An EVSE held for an idToken (or its group) until ``expiry`` (unix time)."""

    reservation_id: int
    evse_id: int  # 0: any EVSE of the station
    id_token: str
    group_id: str | None
    expiry: float

    def allows(self, id_token: str, group_id: str | None) -> bool:
        """True when this token (or another card of the same group) may use the reservation."""
        if id_token.upper() == self.id_token.upper():
            return True
        return bool(self.group_id and group_id and group_id.upper() == self.group_id.upper())


class ReservationBook:
    """The station's reservations, persisted in the state store."""

    def __init__(self, store):
        self._store = store
        self._by_id: dict[int, Reservation] = {
            r["reservation_id"]: Reservation(**r) for r in store.get(_KEY, [])}

    def __iter__(self):
        return iter(sorted(self._by_id.values(), key=lambda r: r.reservation_id))

    def get(self, reservation_id: int) -> Reservation | None:
        """The reservation with this id, or None."""
        return self._by_id.get(reservation_id)

    def for_evse(self, evse_id: int) -> Reservation | None:
        """The reservation holding this EVSE specifically."""
        return next((r for r in self if r.evse_id == evse_id), None)

    def station_wide(self) -> list[Reservation]:
        """Reservations for any EVSE (connector 0 / no EVSE given)."""
        return [r for r in self if r.evse_id == 0]

    def add(self, reservation: Reservation) -> None:
        """Store (or replace, same id) a reservation."""
        self._by_id[reservation.reservation_id] = reservation
        self._save()

    def remove(self, reservation_id: int) -> Reservation | None:
        """Drop a reservation; returns it, or None if unknown."""
        removed = self._by_id.pop(reservation_id, None)
        if removed is not None:
            self._save()
        return removed

    def expired(self, now: float) -> list[Reservation]:
        """Reservations whose expiry has passed."""
        return [r for r in self if r.expiry <= now]

    def _save(self) -> None:
        self._store.put(_KEY, [asdict(r) for r in self])
