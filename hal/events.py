"""Values and events the hardware layer hands to the agent.

Devices never call into the charging logic: they deliver events through an
``emit`` callable given at construction (the agent puts them on one asyncio
queue). A runtime fault is a ``FaultRaised`` event, never an exception thrown
into the caller.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


class PilotState(str, enum.Enum):
    """IEC 61851-1 control pilot states as seen by the EVSE."""

    A = "A"  # no EV connected
    B = "B"  # EV connected, not requesting energy
    C = "C"  # EV connected, requesting energy
    D = "D"  # EV requesting energy, ventilation required
    E = "E"  # no power: pilot shorted or EVSE unpowered
    F = "F"  # EVSE error: pilot held at -12 V

    @property
    def plugged(self) -> bool:
        """True when an EV is connected (B, C or D)."""
        return self in (PilotState.B, PilotState.C, PilotState.D)

    @property
    def requesting(self) -> bool:
        """True when the EV asks for energy (C or D)."""
        return self in (PilotState.C, PilotState.D)


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One energy meter reading; units are in the field names, one tuple item per phase.

    ``timestamp`` is wall-clock seconds since the epoch (``time.time()``),
    because OCPP meter values carry absolute times.
    """

    energy_import_Wh: float
    power_W: float
    voltage_V: tuple[float, ...]
    current_A: tuple[float, ...]
    timestamp: float

    def as_dict(self) -> dict:
        """The reading as a JSON-ready dict (per-phase values as lists)."""
        return {
            "energy_import_Wh": self.energy_import_Wh,
            "power_W": self.power_W,
            "voltage_V": list(self.voltage_V),
            "current_A": list(self.current_A),
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True, slots=True)
class PilotChanged:
    """The control pilot of an EVSE entered a new state."""

    evse_id: int
    state: PilotState


@dataclass(frozen=True, slots=True)
class TokenPresented:
    """An idToken (normalised card UID) was presented; ``evse_id`` None means the station reader."""

    id_token: str
    evse_id: int | None


@dataclass(frozen=True, slots=True)
class FaultRaised:
    """A named fault became active; ``evse_id`` None means a station-wide device."""

    evse_id: int | None
    code: str
    stops_charging: bool
    info: str = ""


@dataclass(frozen=True, slots=True)
class FaultCleared:
    """A previously raised fault is no longer present."""

    evse_id: int | None
    code: str


@dataclass(frozen=True, slots=True)
class ExternalLimit:
    """What an active input imposes: at most ``limit_A`` per phase on ``evse_id`` (None: every EVSE).

    ``source`` names who set it in OCPP 2.0.1's words ("EMS" energy manager,
    "SO" grid/system operator, "Other"); ``grid_critical`` says the grid
    depends on it (2.0.1 isGridCritical).
    """

    limit_A: float
    source: str = "EMS"
    grid_critical: bool = False
    evse_id: int | None = None


@dataclass(frozen=True, slots=True)
class ExternalLimitChanged:
    """The external limit input became active (the limit applies) or inactive (it is lifted)."""

    limit: ExternalLimit
    active: bool


HalEvent = PilotChanged | TokenPresented | FaultRaised | FaultCleared | ExternalLimitChanged
Emit = Callable[[HalEvent], None]


def deliver(emit: Emit, event: HalEvent) -> None:
    """Hand ``event`` to ``emit``, logging (not raising) if the consumer fails.

    A broken consumer must not abort a device command halfway, e.g. leave a
    contactor open without its fault being recorded by the device.
    """
    try:
        emit(event)
    except Exception:
        log.exception("event consumer failed on %r", event)
