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
    """Why a transaction ended (OCPP 1.6 Reason; 2.0.1 maps onto stoppedReason).

    The members after OTHER exist only in 2.0.1; :attr:`basic` is the 1.6 reason that covers each.
    """

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
    MASTER_PASS = "MasterPass"  # stopped with a card of the MasterPassGroupId group
    TIMEOUT = "Timeout"  # started at authorization, but no cable came within the connection timeout
    STOPPED_BY_EV = "StoppedByEV"  # the EV stopped drawing and TxStopPoint ends at EnergyTransfer
    GROUND_FAULT = "GroundFault"  # the residual-current device tripped
    ENERGY_LIMIT_REACHED = "EnergyLimitReached"  # the transaction's limit (2.1 transactionLimit.maxEnergy)
    TIME_LIMIT_REACHED = "TimeLimitReached"  # the transaction's limit (2.1 transactionLimit.maxTime)
    COST_LIMIT_REACHED = "CostLimitReached"  # the transaction's limit (2.1 transactionLimit.maxCost)

    @property
    def basic(self) -> "StopReason":
        """The reason among 1.6's that covers this one (itself for those), for records every version reads."""
        return _BASIC.get(self, self)


_BASIC = {StopReason.MASTER_PASS: StopReason.LOCAL, StopReason.TIMEOUT: StopReason.OTHER,
          StopReason.STOPPED_BY_EV: StopReason.OTHER, StopReason.GROUND_FAULT: StopReason.OTHER,
          StopReason.ENERGY_LIMIT_REACHED: StopReason.OTHER, StopReason.TIME_LIMIT_REACHED: StopReason.OTHER,
          StopReason.COST_LIMIT_REACHED: StopReason.OTHER}


class AuthorizationStatus(str, enum.Enum):
    """The verdict on an idToken (the members after CONCURRENT_TX only 2.0.1 gives)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"
    NO_CREDIT = "NoCredit"
    NOT_ALLOWED_TYPE_EVSE = "NotAllowedTypeEVSE"
    NOT_AT_THIS_LOCATION = "NotAtThisLocation"
    NOT_AT_THIS_TIME = "NotAtThisTime"
    UNKNOWN = "Unknown"


class IdToken(str):
    """An idToken as presented: its text (what 1.6 calls the idTag) and how it was presented.

    ``type`` is a 2.0.1 IdTokenEnumType (ISO14443 for a card on our reader, Central,
    eMAID, KeyCode, ... as a CSMS gave it, NoAuthorization for free vend), or None when
    unknown, as for every 1.6 idTag. It is a str, so code that needs only the text
    (1.6 messages, logs) takes it unchanged; code that needs the type reads ``.type``.
    """

    type: str | None

    def __new__(cls, text: str, type: str | None = None) -> "IdToken":  # noqa: A002 (OCPP's field name)
        token = super().__new__(cls, text)
        token.type = type
        return token

    def __repr__(self) -> str:
        return f"IdToken({str(self)!r}, {self.type!r})"


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
