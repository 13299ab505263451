"""Smart charging as OCPP 1.6 and 2.0.1 both do it, over the core's one composite-schedule engine.

The two versions word a charging profile alike but for a few names: 1.6 calls the
profile's id ``chargingProfileId`` and carries one schedule, 2.0.1 calls it ``id``,
carries a list of schedules and has purposes of its own. Each version module says
which (the arguments of :func:`profile_from_fields` and the hooks of
:class:`SmartChargingBase`); what is done with a profile (converted, validated,
installed, answered) and how a composite schedule is put into words lives here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agent.core.charging.smart_charging import (
    AMPS,
    TX_PROFILE,
    WATTS,
    ChargingProfile,
    ChargingSchedule,
    ChargingSchedulePeriod,
)
from agent.runtime.clock import format_iso, unix_time

log = logging.getLogger("agent.ocpp")

# chargingRateUnit as OCPP writes it -> the core's unit (the same letters in both versions).
RATE_UNITS = {"A": AMPS, "W": WATTS}

ACCEPTED = "Accepted"
REJECTED = "Rejected"


class ProfileRefused(Exception):
    """A charging profile that came with a remote start cannot be used: the start is Rejected."""


def rate_unit(word: str | None) -> str:
    """The core's unit for a requested chargingRateUnit; amperes when none is asked for or it is unknown."""
    return RATE_UNITS.get(word or "A", AMPS)


def rate_unit_word(unit: str) -> str:
    """The chargingRateUnit word for one of the core's units."""
    return "W" if unit == WATTS else "A"


def profile_from_fields(data: dict, *, profile_id: int, purpose: str, schedule: dict, evse_id: int,
                        transaction_ref: str | None) -> ChargingProfile:
    """A charging profile (snake_case dict from the library) as the core's ChargingProfile.

    The caller has picked out what its version names differently: the profile's
    id, its purpose in the core's words and the one schedule to use. Every
    dateTime is read by ``unix_time`` (one without an offset is UTC). Raises
    KeyError or ValueError for a profile that cannot be read.
    """
    periods = tuple(ChargingSchedulePeriod(p["start_period"], float(p["limit"]), p.get("number_phases"))
                    for p in schedule["charging_schedule_period"])
    min_rate = schedule.get("min_charging_rate")
    return ChargingProfile(
        profile_id=profile_id, stack_level=data["stack_level"], purpose=purpose,
        kind=data["charging_profile_kind"],
        schedule=ChargingSchedule(RATE_UNITS[schedule["charging_rate_unit"]], periods, schedule.get("duration"),
                                  unix_time(schedule.get("start_schedule")),
                                  float(min_rate) if min_rate else None, schedule_id=schedule.get("id")),
        recurrency=data.get("recurrency_kind"), valid_from=unix_time(data.get("valid_from")),
        valid_to=unix_time(data.get("valid_to")), transaction_ref=transaction_ref, evse_id=evse_id)


@dataclass(frozen=True)
class CompositeReply:
    """A composite schedule put into words both versions use; each wraps them in its own message."""

    #: When the schedule starts, as an OCPP dateTime.
    start: str
    #: chargingRateUnit.
    rate_unit: str
    #: chargingSchedulePeriod: start offset in seconds and the limit, rounded to 0.1 as the schemas ask.
    periods: list[dict]


class SmartChargingBase:
    """Mixed into each version's smart-charging handlers: the acceptance flow of a profile and the
    composite schedule, with the version's words supplied by the two hooks below."""

    # ------------------------------------------------------------ hooks the version fills in

    def profile_from_message(self, data: dict, *, evse_id: int, transaction_ref: str | None) -> ChargingProfile:
        """The version's charging profile as the core's (KeyError, ValueError or IndexError if unreadable)."""
        raise NotImplementedError

    def profile_transaction(self, evse_id: int, data: dict) -> str | None:
        """The running transaction a TxProfile names, in the version's way of naming it; None if it runs not."""
        raise NotImplementedError

    # ------------------------------------------------------------ shared flow

    def accept_profile(self, data: dict, *, evse_id: int) -> str:
        """SetChargingProfile: Accepted once validated, stored and applied to the offered current, else Rejected."""
        station = self.core.station
        if evse_id != 0 and not station.has_evse(evse_id):
            return REJECTED
        ref = None
        if data["charging_profile_purpose"] == TX_PROFILE:
            ref = self.profile_transaction(evse_id, data)
            if ref is None:
                return REJECTED  # a TxProfile needs its transaction
        try:
            profile = self.profile_from_message(data, evse_id=evse_id, transaction_ref=ref)
        except (KeyError, ValueError, IndexError) as exc:
            log.warning("SetChargingProfile refused: %s", exc)
            return REJECTED
        problems = station.profile_problems(profile)
        if problems:
            log.warning("SetChargingProfile %d refused: %s", profile.profile_id, "; ".join(problems))
            return REJECTED
        station.install_profile(profile)
        return ACCEPTED

    def remote_start_profile(self, data: dict | None, *, evse_id: int) -> ChargingProfile | None:
        """The charging profile a remote start carries (None when it carries none), bound to the transaction
        it is about to start; ProfileRefused when it is not a TxProfile or fails the station's limits."""
        if data is None:
            return None
        if data.get("charging_profile_purpose") != TX_PROFILE:
            raise ProfileRefused("only a TxProfile may come with a remote start")
        profile = self.profile_from_message(data, evse_id=evse_id, transaction_ref="pending")
        if self.core.station.profile_problems(profile):
            raise ProfileRefused(f"profile {profile.profile_id} fails the station's limits")
        return profile

    def composite_reply(self, evse_id: int, *, duration: int, charging_rate_unit: str | None) -> CompositeReply | None:
        """GetCompositeSchedule from now over ``duration`` seconds; None when it is to be Rejected."""
        unit = rate_unit(charging_rate_unit)
        composite = self.core.station.composite(evse_id, duration_s=duration, rate_unit=unit)
        if composite is None:
            return None
        periods = [{"start_period": p.start_period_s, "limit": round(p.limit, 1)} for p in composite.periods]
        return CompositeReply(start=format_iso(composite.start), rate_unit=rate_unit_word(unit), periods=periods)
