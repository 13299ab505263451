"""The operation mode in force (OCPP 2.1, pure engine): Idle where a period in force says so, else ChargingOnly; a
change of mode alone (Idle giving way to a ChargingOnly period at 0 A) is a boundary the station re-plans at."""

from agent.core.charging.smart_charging import (
    ABSOLUTE,
    AMPS,
    TX_DEFAULT,
    ChargingProfile,
    ChargingSchedule,
    ChargingSchedulePeriod,
    limit_at,
    next_change,
    operation_mode_at,
)
from agent.core.charging.smart_charging.model import IDLE

T0 = 1_704_067_200
SITE = {"evse_id": 1, "now_tx_start": T0, "transaction_ref": "tx1", "phases": 3, "evse_max_A": 32.0}


def _profile(*periods: ChargingSchedulePeriod) -> ChargingProfile:
    return ChargingProfile(1, 0, TX_DEFAULT, ABSOLUTE, ChargingSchedule(AMPS, periods, start_schedule=T0), evse_id=1)


def test_the_mode_follows_the_period_in_force_and_a_mode_only_change_is_a_boundary():
    profile = _profile(ChargingSchedulePeriod(0, 16, operation_mode=IDLE), ChargingSchedulePeriod(60, 0),
                       ChargingSchedulePeriod(120, 16))
    assert operation_mode_at([profile], T0 + 1, **SITE) == "Idle"
    assert operation_mode_at([profile], T0 + 61, **SITE) == "ChargingOnly"
    assert operation_mode_at([], T0, **SITE) == "ChargingOnly"
    assert limit_at([profile], T0 + 1, **SITE) == limit_at([profile], T0 + 61, **SITE) == 0.0
    assert next_change([profile], T0 + 1, **SITE) == T0 + 60  # the mode changes there, the limit does not
    assert next_change([profile], T0 + 61, **SITE) == T0 + 120
