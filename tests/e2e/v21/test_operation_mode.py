"""2.1 operation modes of a running transaction against the strict 2.1 test CSMS over a real WebSocket, on the mock
HAL: a charging profile's Idle period, then its ChargingOnly period, are each reported as they come into force
(TransactionEvent Updated, triggerReason OperationModeChanged), and every event of the transaction says the mode
in force when it was recorded."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ocpp.v21 import call as call21

from tests.harness import running_agent, wait_until
from tests.harness.v201 import charge, config, events


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _pilot(agent) -> float:
    return agent.hal.evse(1).pilot.current_limit_A


async def _pilot_within_1s(agent, amps: float) -> None:
    await wait_until(lambda: _pilot(agent) == amps, timeout=1.0, interval=0.01)


def _mode_changes(csms) -> list[str]:
    return [e["transactionInfo"]["operationMode"] for e in events(csms) if e["triggerReason"] == "OperationModeChanged"]


async def test_v21_idle_then_charging_only_is_reported_as_operation_mode_changes(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        await _pilot_within_1s(agent, 32)
        start = time.time()
        profile = {"id": 31, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
                   "charging_profile_kind": "Absolute",
                   "charging_schedule": [{"id": 31, "charging_rate_unit": "A", "start_schedule": _iso(start - 0.5),
                                          "charging_schedule_period": [
                                              {"start_period": 0, "limit": 10, "operation_mode": "Idle"},
                                              {"start_period": 2, "limit": 10, "operation_mode": "ChargingOnly"}]}]}
        answer = await csms.call("CP1", call21.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert answer.status == "Accepted"
        await _pilot_within_1s(agent, 0)  # Idle: no energy transfer
        await csms.wait_for(lambda: _mode_changes(csms) == ["Idle"], timeout=2.0)
        await wait_until(lambda: _pilot(agent) == 10, timeout=start + 1.5 + 1.0 - time.time(), interval=0.01)
        await csms.wait_for(lambda: _mode_changes(csms) == ["Idle", "ChargingOnly"], timeout=2.0)

        # Each event says the mode recorded with it: ChargingOnly until the Idle change, then Idle until the next.
        mode = "ChargingOnly"
        ordered = sorted(events(csms), key=lambda e: e["seqNo"])
        for event in ordered:
            if event["triggerReason"] == "OperationModeChanged":
                mode = event["transactionInfo"]["operationMode"]
            assert event["transactionInfo"]["operationMode"] == mode, event
        idle = [e for e in ordered if e["transactionInfo"]["operationMode"] == "Idle"]
        assert any(e["transactionInfo"].get("chargingState") == "SuspendedEVSE" for e in idle)  # 0 A while Idle
        assert csms.schema_errors == []
