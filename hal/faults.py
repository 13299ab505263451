"""The table of hardware fault codes, and per-device bookkeeping of active faults.

Codes are ours; mapping them onto OCPP error codes is the agent's job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hal.events import Emit, FaultCleared, FaultRaised, deliver

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault code: whether it stops charging (else a warning) and what it means."""

    code: str
    stops_charging: bool
    description: str


FAULTS: dict[str, FaultSpec] = {
    spec.code: spec
    for spec in (
        FaultSpec("contactor-welded", True, "contactor still closed after it was commanded open"),
        FaultSpec("contactor-stuck-open", True, "contactor did not close when commanded"),
        FaultSpec("lock-failure", True, "connector lock did not reach the commanded position"),
        FaultSpec("meter-offline", False, "energy meter not answering; charging may continue"),
        FaultSpec("pilot-offline", True, "EVSE controller (pilot) not answering; EV state unknown"),
        FaultSpec("rcd-trip", True, "residual current device tripped; power path is open"),
        FaultSpec("reader-offline", False, "RFID reader not answering; local authorization lost"),
    )
}


def fault_spec(code: str) -> FaultSpec:
    """Look up a fault code; raises ValueError for an unknown one."""
    try:
        return FAULTS[code]
    except KeyError:
        known = ", ".join(FAULTS)
        raise ValueError(f"unknown fault code {code!r} (known: {known})") from None


class FaultTracker:
    """Active faults of one device; emits FaultRaised/FaultCleared on transitions only.

    Devices re-check their condition on every command or input edge; the
    tracker keeps a persisting fault from being reported again each time.
    """

    def __init__(self, evse_id: int | None, *, emit: Emit) -> None:
        self.evse_id = evse_id
        self._emit = emit
        self._active: dict[str, str] = {}
        self._where = "station" if evse_id is None else f"EVSE {evse_id}"

    @property
    def active(self) -> frozenset[str]:
        """Codes currently raised."""
        return frozenset(self._active)

    def is_active(self, code: str) -> bool:
        """True while ``code`` is raised."""
        return code in self._active

    def raise_fault(self, code: str, *, info: str = "") -> bool:
        """Mark ``code`` active; emits FaultRaised and returns True if it was not already."""
        spec = fault_spec(code)
        if code in self._active:
            return False
        self._active[code] = info
        # One log line per transition, so the journal shows when a fault began and ended.
        log.log(logging.ERROR if spec.stops_charging else logging.WARNING,
                "%s fault raised: %s (%s)", self._where, code, info or spec.description)
        deliver(self._emit, FaultRaised(self.evse_id, code, spec.stops_charging, info))
        return True

    def clear_fault(self, code: str) -> bool:
        """Mark ``code`` cleared; emits FaultCleared and returns True if it was active."""
        if self._active.pop(code, None) is None:
            return False
        log.info("%s fault cleared: %s", self._where, code)
        deliver(self._emit, FaultCleared(self.evse_id, code))
        return True

    def __repr__(self) -> str:
        return f"<FaultTracker evse={self.evse_id} active={sorted(self._active)}>"
