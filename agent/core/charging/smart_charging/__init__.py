"""Smart charging, once for OCPP 1.6 and 2.0.1: charging profiles, their store and the composite schedule.

* :mod:`.model` — the frozen, version-neutral data model (times in unix seconds).
* :mod:`.validation` — :func:`validate_profile`, the SetChargingProfile checks.
* :mod:`.store` — :class:`ProfileStore`, installed profiles persisted in the state store.
* :mod:`.engine` — :func:`composite_schedule`, :func:`limit_at`, :func:`next_change` and
  :func:`operation_mode_at` (2.1).

The protocol adapters translate the ``ocpp`` library's dicts into this model:
ISO dates to unix time, 2.0.1 ChargingStationMaxProfile / ChargingStationExternalConstraints
to ``ChargePointMaxProfile``, the first of 2.0.1's chargingSchedule list, and
1.6's transactionId (or the running transaction, when a TxProfile names none)
to the core's ``transaction_ref``. The engine does no I/O and keeps no state.
"""

from agent.core.charging.smart_charging.engine import (
    CompositeSchedule,
    composite_schedule,
    limit_at,
    next_change,
    operation_mode_at,
)
from agent.core.charging.smart_charging.model import (
    ABSOLUTE,
    AMPS,
    CHARGE_POINT_MAX,
    DAILY,
    RECURRING,
    RELATIVE,
    STATION,
    TX_DEFAULT,
    TX_PROFILE,
    WATTS,
    WEEKLY,
    ChargingProfile,
    ChargingSchedule,
    ChargingSchedulePeriod,
    profile_from_json,
    profile_to_json,
)
from agent.core.charging.smart_charging.store import ProfileStore
from agent.core.charging.smart_charging.validation import validate_profile

__all__ = [
    "ABSOLUTE", "AMPS", "CHARGE_POINT_MAX", "DAILY", "RECURRING", "RELATIVE", "STATION", "TX_DEFAULT",
    "TX_PROFILE", "WATTS", "WEEKLY",
    "ChargingProfile", "ChargingSchedule", "ChargingSchedulePeriod", "CompositeSchedule", "ProfileStore",
    "composite_schedule", "limit_at", "next_change", "operation_mode_at", "profile_from_json", "profile_to_json",
    "validate_profile",
]
