"""Storage supervision in the charging station: the fault, and no new transaction while it lasts.

A mixin of :class:`agent.core.charging.station.ChargingStation`. The storage health
(:mod:`agent.runtime.storage_health`) calls :meth:`StationStorage.storage_changed` when ``data_dir``
stops (or starts again) taking writes. The fault is a station-level one, :data:`STORAGE_FAULT`: 1.6
reports it on connector 0 (StatusNotification InternalError, through ``status_changed``), 2.0.1 as
NotifyEvent (``fault_changed``). Both go straight to a connected CSMS: a report queued in the durable
outbox would need the disk that failed. Running transactions go on (the journal holds their records
in memory); a card or a remote start that would begin one is refused, with a display text and a log
line, until the fault clears.

It uses the station's ``store``, ``journal``, ``station_faults``, ``statuses``, ``port``, ``clock``,
``show_text``, ``_status_changed`` and ``_outbox_changed``.
"""

from __future__ import annotations

import logging

from agent.runtime.storage_health import STORAGE_FAULT

log = logging.getLogger("agent.station")

#: What the station's display says to a driver whose card cannot start a transaction now.
REFUSED_TEXT = "Storage fault: cannot start"


class StationStorage:
    """The station's side of storage supervision (see the module docstring)."""

    def _watch_storage(self, store) -> None:
        """Hear from the store's health (a store without one, as in some tests, never fails this way)."""
        health = getattr(store, "health", None)
        if health is not None:
            health.add_listener(self.storage_changed)

    def _last_write_attempt(self) -> None:
        """Stopping while data_dir refuses writes: one last try, else say what is lost (transactions still
        open on disk are ended at the next start, with the meter's reading then)."""
        health = getattr(self.store, "health", None)
        if health is not None and health.failing() and not health.retry_now():
            log.error("stopping with data_dir unwritable (%s): %d transaction changes held in memory are lost",
                      health.describe(), self.journal.held)

    def storage_changed(self, failing: bool, info: str) -> None:
        """data_dir stopped taking writes (``failing``, ``info`` says what) or takes them again."""
        (self.station_faults.add if failing else self.station_faults.discard)(STORAGE_FAULT)
        self._status_changed(0, self.statuses[0][0], next(iter(sorted(self.station_faults)), None))
        notify = getattr(self.port, "fault_changed", None)
        if notify is not None:
            notify(None, STORAGE_FAULT, failing, timestamp=self.clock.time(), info=info if failing else "")
        if not failing:
            self._outbox_changed()  # what was held is written now: deliver it

    def _storage_refuses(self, what: str, *, display: bool = False) -> bool:
        """True (and said in the log, and on the display if asked) while no transaction may start."""
        if STORAGE_FAULT not in self.station_faults:
            return False
        log.warning("%s refused: data_dir cannot be written, so a transaction could not be recorded", what)
        if display:
            self.show_text(REFUSED_TEXT)
        return True
