"""OCPP 2.1 priority charging (K21): which profiles count for an EVSE whose transaction has it active.

A PriorityCharging profile is installed like any other (SetChargingProfile) but gives no limit
until the CSMS (UsePriorityCharging) activates priority charging for a transaction. From then
until it is deactivated or the transaction ends, the PriorityCharging profile takes the place of
the TxProfile and TxDefaultProfile of that transaction; the station maximum
(ChargePointMaxProfile) and the external limit still cap it, as they cap everything.

The engine knows nothing of this: :func:`profiles_for_evse` hands it the profiles as they count
for one EVSE, the PriorityCharging ones standing in as TxDefaultProfiles of that EVSE (so they
follow the same rules: highest stack level wins, the EVSE's own beats EVSE 0's, Relative ones
count from the transaction start).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from agent.core.charging.smart_charging.model import (
    PRIORITY_CHARGING,
    STATION,
    TX_DEFAULT,
    TX_PROFILE,
    ChargingProfile,
)


def priority_profiles(profiles: Iterable[ChargingProfile], evse_id: int) -> list[ChargingProfile]:
    """The PriorityCharging profiles that may serve a transaction on ``evse_id`` (its own or EVSE 0's)."""
    return [p for p in profiles if p.purpose == PRIORITY_CHARGING and p.evse_id in (STATION, evse_id)]


def profiles_for_evse(profiles: Iterable[ChargingProfile], evse_id: int, *, priority: bool) -> list[ChargingProfile]:
    """The profiles as they count for ``evse_id``: unchanged (PriorityCharging ones left out) without priority
    charging; with it, the EVSE's TxProfiles and TxDefaultProfiles replaced by its PriorityCharging profiles."""
    profiles = list(profiles)
    if not priority:
        return [p for p in profiles if p.purpose != PRIORITY_CHARGING]
    replaced = (TX_PROFILE, TX_DEFAULT, PRIORITY_CHARGING)
    kept = [p for p in profiles if p.purpose not in replaced]
    return kept + [dataclasses.replace(p, purpose=TX_DEFAULT) for p in priority_profiles(profiles, evse_id)]
