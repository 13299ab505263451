"""The SNAPSHOT of the status socket: the running agent's live state as one JSON-ready dict.

Built only on demand (a ``snapshot`` request, or a change while somebody watches), from what the
agent already holds: the station's declared API (``EvseView``), the transaction journal (the meter
reading a transaction started at), each meter's latest polled reading, the pilot's offered current,
the display's text and the CSMS link. Nothing here reads hardware or waits.

Keys (the interface ``ocpp-agent status`` and ``ocpp-agent web`` rely on)::

    station_id, connected, csms_url (never credentials), ocpp_version, connected_since (ISO or null),
    display (text or null), time (ISO, now), station_faults (faults of the station itself, also in
    each EVSE's faults), and
    evses: [{id, status, power_W, energy_Wh, meter_Wh, transaction_id, faults, current_limit_A}]
"""

from __future__ import annotations

import time
from typing import Callable

from agent.link.connect import display_url
from agent.protocol.common.status import status_word
from agent.runtime.clock import format_iso


class LinkState:
    """The CSMS link as the status socket reports it: up or down, to which URL, since when.

    ``changed(up)`` is the session's connection listener; it only records, so it costs nothing when
    nobody asks. The time is kept on the monotonic clock and turned into station time when asked, so a
    clock synchronisation in between does not move it.
    """

    def __init__(self, *, default_url: str, clock, monotonic: Callable[[], float] = time.monotonic):
        self.default_url = default_url
        self.url: str | None = None
        self._clock = clock
        self._monotonic = monotonic
        self._up_since: float | None = None

    @property
    def connected(self) -> bool:
        """Whether the WebSocket to the CSMS is open now."""
        return self._up_since is not None

    def changed(self, up: bool, url: str | None = None) -> None:
        """The link went up (to ``url``) or down."""
        if up:
            self._up_since = self._monotonic()
            self.url = url or self.url
        else:
            self._up_since = None

    def connected_since(self) -> str | None:
        """When the current connection opened, in station time (ISO 8601 UTC), or None while down."""
        if self._up_since is None:
            return None
        return format_iso(self._clock.time() - (self._monotonic() - self._up_since))

    def public_url(self) -> str:
        """The URL in use (or, before any connection, the configured one) without any user:password."""
        return display_url(self.url or self.default_url)


def evse_status(station, ocpp_version: str, evse_id: int) -> dict:
    """An EVSE's status last recorded, in the words of ``ocpp_version``, and its transaction id.

    The transaction id is what the CSMS knows it by: under 1.6 the CSMS's transactionId once it gave
    one (until then, offline, our own reference); under 2.0.1 and 2.1 our transactionId. The same
    words ``sim state`` and the status socket show.
    """
    view = station.evse(evse_id)
    transaction_id = None
    if view.transaction_ref is not None:
        use_remote = ocpp_version == "1.6" and view.remote_id is not None
        transaction_id = int(view.remote_id) if use_remote else view.transaction_ref
    return {"status": status_word(ocpp_version, view.status), "transaction_id": transaction_id}


class SnapshotBuilder:
    """Builds SNAPSHOTs of one running agent (``build()``); counts them in ``built`` (for tests and figures)."""

    def __init__(self, *, station_id: str, ocpp_version: str, station, journal, hal, clock, link: LinkState):
        self.station_id = station_id
        self.ocpp_version = ocpp_version
        self.station = station  # agent.core.charging.api.StationApi
        self.journal = journal
        self.hal = hal
        self.clock = clock
        self.link = link
        self.built = 0
        self._meter_start: dict[str, float] = {}  # transaction ref -> its meter start (never changes)

    def build(self) -> dict:
        """The SNAPSHOT now."""
        self.built += 1
        display = getattr(self.hal, "display", None)
        return {
            "station_id": self.station_id,
            "connected": self.link.connected,
            "csms_url": self.link.public_url(),
            "ocpp_version": self.ocpp_version,
            "connected_since": self.link.connected_since(),
            "display": display.text if display is not None else None,
            "time": self.clock.now_iso(),
            "station_faults": sorted(self.station.station_fault_codes()),
            "evses": [self._evse(evse_id) for evse_id in self.station.evse_ids()],
        }

    def _evse(self, evse_id: int) -> dict:
        view = self.station.evse(evse_id)
        hardware = self.hal.evse(evse_id)
        reading = hardware.meter.latest  # None when stale: a dead meter shows no power, not an old one
        meter_Wh = reading.energy_import_Wh if reading is not None else None
        return {
            "id": evse_id,
            **evse_status(self.station, self.ocpp_version, evse_id),
            "power_W": float(reading.power_W) if reading is not None else None,
            "energy_Wh": self._transaction_energy(view.transaction_ref, meter_Wh),
            "meter_Wh": meter_Wh,
            # As `sim state`: a fault of the station itself (its card reader, its storage) on every EVSE.
            "faults": sorted(view.faults | self.station.station_fault_codes()),
            "current_limit_A": _number(hardware.pilot.current_limit_A),
        }

    def _transaction_energy(self, ref: str | None, meter_Wh: float | None) -> float | None:
        """Energy delivered by the running transaction so far; None without one."""
        if ref is None:
            return None
        start = self._meter_start.get(ref)
        tx = None
        if start is None:
            tx = self.journal.get(ref)
            if tx is None:
                return None
            if len(self._meter_start) > 64:  # only running transactions matter: forget the ended ones
                self._meter_start.clear()
            start = self._meter_start[ref] = tx.meter_start_Wh
        if meter_Wh is None:  # meter down: the last value the transaction recorded
            tx = tx or self.journal.get(ref)
            meter_Wh = tx.last_meter_Wh if tx is not None else None
        return None if meter_Wh is None else round(max(0.0, meter_Wh - start), 3)


def _number(value) -> float | None:
    return None if value is None else float(value)
