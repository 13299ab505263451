"""Version-neutral vocabulary of the charging core.

The names follow OCPP 1.6 where both versions mean the same thing; the 2.0.1
adapter maps them onto its own enumerations (e.g. Preparing/Charging/... all
become "Occupied").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ConnectorStatus(str, enum.Enum):
    """What an EVSE is doing, as reported to the CSMS."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class StopReason(str, enum.Enum):
    """Why a transaction ended (OCPP 1.6 Reason; 2.0.1 maps onto stoppedReason)."""

    LOCAL = "Local"
    REMOTE = "Remote"
    EV_DISCONNECTED = "EVDisconnected"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    SOFT_RESET = "SoftReset"
    HARD_RESET = "HardReset"
    DEAUTHORIZED = "DeAuthorized"
    EMERGENCY_STOP = "EmergencyStop"
    UNLOCK_COMMAND = "UnlockCommand"
    OTHER = "Other"


class AuthorizationStatus(str, enum.Enum):
    """The verdict on an idToken."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


@dataclass(frozen=True)
class IdTokenInfo:
    """What is known about an idToken: status, optional expiry (unix time) and group (parent) token."""

    status: AuthorizationStatus
    expiry: float | None = None
    group_id: str | None = None

    @property
    def accepted(self) -> bool:
        """True when charging may start (or go on) with this token."""
        return self.status is AuthorizationStatus.ACCEPTED


@dataclass(frozen=True)
class Sample:
    """One sampled value, in OCPP's SampledValue terms (strings for the enumerations)."""

    measurand: str  # e.g. "Energy.Active.Import.Register"
    value: float
    unit: str  # "Wh", "W", "V", "A"
    phase: str | None = None  # "L1".."L3", "L1-N", or None for the total
    context: str = "Sample.Periodic"
    location: str = "Outlet"


@dataclass(frozen=True)
class MeterSample:
    """A set of sampled values taken at one moment (a 1.6 MeterValue element)."""

    timestamp: float
    values: tuple[Sample, ...] = field(default_factory=tuple)
