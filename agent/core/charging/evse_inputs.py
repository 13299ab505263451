"""The inputs an EVSE state machine accepts: one frozen dataclass per input, and the declared list of them.

``EvseMachine.submit`` takes exactly one of these objects (``EVSE_INPUTS``);
anything else is refused with a TypeError, so a new input cannot be added
without a handler, nor a typo go unnoticed. Each input is handled alone, in
the order submitted; the answer (where an input has one) comes back through
the future ``submit`` returns.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Union, get_args

from agent.core.charging.model import IdTokenInfo, StopReason
from agent.core.charging.reservations import Reservation
from hal.events import PilotState

PLUGGED = (PilotState.B, PilotState.C, PilotState.D)
"""Pilot states with a cable in the socket."""

REQUESTING = (PilotState.C, PilotState.D)
"""Pilot states in which the EV asks for energy."""


@dataclass(frozen=True, kw_only=True)
class Evaluate:
    """Work out the state afresh from the hardware and apply it (at start-up). Answers None."""


@dataclass(frozen=True, kw_only=True)
class Timer:
    """Time passed with no other input: a waiting cable may have timed out. Answers None.

    The machine makes this one itself when its queue stays empty.
    """


@dataclass(frozen=True, kw_only=True)
class Pilot:
    """The control pilot moved to ``state`` (cable plugged, unplugged, EV asking for energy or not)."""

    state: PilotState


@dataclass(frozen=True, kw_only=True)
class Authorize:
    """A token was accepted for this EVSE (a tap or a remote start). Answers True if it will be used.

    ``token_type`` is how the token was presented (2.0.1 IdTokenEnumType; None:
    a 1.6 idTag); ``reservation_id`` names a station-wide reservation it uses.
    """

    id_token: str
    info: IdTokenInfo
    remote_start_id: int | None = None
    token_type: str | None = "ISO14443"
    reservation_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class Stop:
    """End the running transaction's authorization, or cancel a waiting one. Answers True if there was one."""

    reason: StopReason
    id_token: str | None = None
    token_type: str | None = None


@dataclass(frozen=True, kw_only=True)
class Deauthorize:
    """The CSMS refused the token of transaction ``ref`` after it started. Answers None."""

    ref: str


@dataclass(frozen=True, kw_only=True)
class SuspendInvalid:
    """Transaction ``ref`` used up MaxEnergyOnInvalidId: its energy stops. Answers None.

    The machine submits this itself, from the task that watches the allowance.
    """

    ref: str


@dataclass(frozen=True, kw_only=True)
class Reserve:
    """Hold this EVSE for ``reservation`` (the station checked it is free). Answers None."""

    reservation: Reservation


@dataclass(frozen=True, kw_only=True)
class Unreserve:
    """Release the hold of reservation ``reservation_id``, if this EVSE has it. Answers None."""

    reservation_id: int


@dataclass(frozen=True, kw_only=True)
class Availability:
    """Make the EVSE operative or inoperative. Answers "Accepted", or "Scheduled" while a transaction runs."""

    operative: bool


@dataclass(frozen=True, kw_only=True)
class Limit:
    """Smart charging allows ``amps`` now (capped at the EVSE's maximum; 0 suspends). Answers None."""

    amps: float


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Hardware fault ``code`` was raised (``active``) or cleared. Answers None."""

    code: str
    active: bool


@dataclass(frozen=True, kw_only=True)
class Unlock:
    """UnlockConnector: end a running transaction, then release the cable. Answers True if it unlocked."""


@dataclass(frozen=True, kw_only=True)
class EndForReset:
    """The whole station resets: end a running transaction with ``reason`` and drop a waiting token."""

    reason: StopReason


@dataclass(frozen=True, kw_only=True)
class Reset:
    """Reset this EVSE alone (2.0.1 B11/B12). Answers "Accepted", or "Scheduled" until its transaction ends.

    ``immediate`` ends a running transaction first. ``done`` (if given) resolves
    once the EVSE has been re-initialised and its status reported.
    """

    immediate: bool
    done: asyncio.Future | None = field(default=None, compare=False)


EvseInput = Union[Evaluate, Timer, Pilot, Authorize, Stop, Deauthorize, SuspendInvalid, Reserve, Unreserve,
                  Availability, Limit, Fault, Unlock, EndForReset, Reset]
"""Any one input of the EVSE machine (for annotations)."""

EVSE_INPUTS: tuple[type, ...] = get_args(EvseInput)
"""Every input type (taken from ``EvseInput``, so the list is kept once); the machine has one handler for each."""
