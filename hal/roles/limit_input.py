"""The external limit input role (optional): a contact that caps the current while it is active.

The common real case is the grid operator's ripple-control receiver or a home
energy manager's relay (German §14a EnWG "steuerbare Verbrauchseinrichtung",
the older "EVU-Sperre"): while its contact is active the station may draw at
most a configured current per phase, often 0 A (blocked).
"""

from __future__ import annotations

import abc
import logging
import math

from hal.events import Emit, ExternalLimit, ExternalLimitChanged, deliver
from hal.roles._device import Device

log = logging.getLogger(__name__)

# OCPP 2.0.1 ChargingLimitSourceEnumType without "CSO": the CSMS's own limits
# arrive as charging profiles, never through a local input.
LIMIT_SOURCES = ("EMS", "SO", "Other")


def check_limit(limit: ExternalLimit) -> ExternalLimit:
    """Return ``limit`` if it is usable, else raise ValueError/TypeError naming the bad field."""
    amps = limit.limit_A
    if isinstance(amps, bool) or not isinstance(amps, (int, float)):
        raise TypeError(f"limit_A must be a number, not {type(amps).__name__}")
    if not math.isfinite(amps) or amps < 0:
        raise ValueError(f"limit_A must be a finite number >= 0, not {amps!r}")
    if limit.source not in LIMIT_SOURCES:
        raise ValueError(f"source must be one of {', '.join(LIMIT_SOURCES)}, not {limit.source!r}")
    if limit.evse_id is not None and (isinstance(limit.evse_id, bool) or not isinstance(limit.evse_id, int)
                                      or limit.evse_id < 1):
        raise ValueError(f"evse_id must be None (every EVSE) or an EVSE id >= 1, not {limit.evse_id!r}")
    return limit


class LimitInput(Device, abc.ABC):
    """An input that, while active, caps the current of the station (or of one EVSE).

    Contract:

    - ``active`` is the level the driver last reported, False until it
      reports. Drivers call ``_set_active(bool)`` from their input's edge
      callback (on the event loop thread, never from a polling loop); an
      ``ExternalLimitChanged`` event is emitted only on a real change.
    - A driver reports the level it finds at ``start()``, so an input that is
      already active when the agent starts applies at once.
    - The role switches nothing itself: the charging core turns the event into
      a cap on the composite schedule, and the EVSE state machine alone moves
      the pilot and the contactor.

    Drivers implement ``_start()`` (claim the input, report its level).
    """

    def __init__(self, *, emit: Emit, limit: ExternalLimit) -> None:
        self.limit = check_limit(limit)
        self._emit = emit
        self._active = False
        self._changes = 0

    @property
    def evse_id(self) -> int | None:
        """The EVSE the limit applies to; None for the whole station."""
        return self.limit.evse_id

    @property
    def active(self) -> bool:
        """True while the input imposes its limit."""
        return self._active

    @property
    def imposed(self) -> ExternalLimit | None:
        """The limit in force now: ``limit`` while active, else None."""
        return self.limit if self._active else None

    def _set_active(self, active: bool) -> bool:
        """Drivers report the input's logical level; emits ExternalLimitChanged and returns True on a change."""
        active = bool(active)
        if active == self._active:
            return False
        self._active = active
        self._changes += 1
        log.info("external limit %s: %s (at most %g A%s)", "active" if active else "lifted",
                 self.limit.source, self.limit.limit_A,
                 "" if self.limit.evse_id is None else f" on EVSE {self.limit.evse_id}")
        deliver(self._emit, ExternalLimitChanged(self.limit, active))
        return True

    @abc.abstractmethod
    async def _start(self) -> None:
        """Driver hook: claim the input, watch its edges and report its present level."""

    def __repr__(self) -> str:
        where = "station" if self.limit.evse_id is None else f"evse={self.limit.evse_id}"
        return (f"<{type(self).__name__} {where} {'active' if self._active else 'inactive'}"
                f" limit={self.limit.limit_A:g}A source={self.limit.source} changes={self._changes}>")
