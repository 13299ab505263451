"""2.1 priority charging, operation modes and external constraints against the strict 2.1 test CSMS over a real
WebSocket, on the mock HAL: UsePriorityCharging swaps the transaction's TxDefaultProfile for its PriorityCharging
profile on the pilot within a second (and back), NoProfile / Rejected; clearing the profile in use ends priority
charging with NotifyPriorityCharging; an Idle period offers 0 A; a V2X mode is refused; the external limit input
shows in GetChargingProfiles as a ChargingStationExternalConstraints profile."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timezone

from ocpp.v21 import call as call21

from agent.config import ExternalLimitConfig
from hal.mock.client import request
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v201 import charge, config


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _profile(profile_id: int, purpose: str, periods: list[dict], *, start: float | None = None) -> dict:
    return {"id": profile_id, "stack_level": 0, "charging_profile_purpose": purpose,
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{"id": profile_id, "charging_rate_unit": "A",
                                   "start_schedule": _iso(start if start is not None else time.time() - 5),
                                   "charging_schedule_period": periods}]}


def limit_config(tmp_path, csms):
    """A mock-HAL agent config with an external limit contact: 6 A from an EMS while closed."""
    base = agent_config(tmp_path, csms.url, ocpp_version=csms.ocpp_version)
    limit = ExternalLimitConfig(limit_A=6.0)
    return dataclasses.replace(base, hal=dataclasses.replace(base.hal, external_limit=limit))


async def switch(agent, active: bool) -> None:
    """Close or open the limit contact through the mock HAL's control socket, as `ocpp-agent sim` does."""
    answer = await asyncio.to_thread(request, agent.mock_control.path, {"cmd": "external_limit", "active": active})
    assert answer["ok"], answer


def _pilot(agent) -> float:
    return agent.hal.evse(1).pilot.current_limit_A


async def _pilot_within_1s(agent, amps: float) -> None:
    await wait_until(lambda: _pilot(agent) == amps, timeout=1.0, interval=0.01)


async def _set(csms, evse_id: int, profile: dict):
    return await csms.call("CP1", call21.SetChargingProfile(evse_id=evse_id, charging_profile=profile))


async def _use(csms, ref: str, activate: bool) -> str:
    return (await csms.call("CP1", call21.UsePriorityCharging(transaction_id=ref, activate=activate))).status


async def test_v21_use_priority_charging_swaps_the_tx_default_for_the_priority_profile_on_the_pilot(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await csms.wait_for_call("StatusNotification")
        assert (await _set(csms, 1, _profile(11, "TxDefaultProfile", [{"start_period": 0, "limit": 10}]))).status \
            == "Accepted"
        await charge(agent, csms)
        ref = agent.station.evse(1).transaction_ref
        await _pilot_within_1s(agent, 10)
        assert await _use(csms, ref, True) == "NoProfile"  # nothing to charge by yet
        assert await _use(csms, "no-such-transaction", True) == "Rejected"
        assert (await _set(csms, 0, _profile(21, "PriorityCharging", [{"start_period": 0, "limit": 24}]))).status \
            == "Accepted"
        await asyncio.sleep(0.2)
        assert _pilot(agent) == 10  # stored, but not acting until activated

        assert await _use(csms, ref, True) == "Accepted"
        await _pilot_within_1s(agent, 24)
        composite = await csms.call("CP1", call21.GetCompositeSchedule(duration=60, evse_id=1))
        assert composite.schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 24.0}]
        assert (await csms.call("CP1", call21.GetChargingProfiles(request_id=3, charging_profile={
            "charging_profile_purpose": "PriorityCharging"}))).status == "Accepted"
        report = (await csms.wait_for_call("ReportChargingProfiles"))[0].payload
        assert [(p["id"], p["chargingProfilePurpose"]) for p in report["chargingProfile"]] == [(21, "PriorityCharging")]
        assert await _use(csms, ref, False) == "Accepted"
        await _pilot_within_1s(agent, 10)

        # Clearing the profile in use ends priority charging; the station says so itself.
        assert await _use(csms, ref, True) == "Accepted"
        await _pilot_within_1s(agent, 24)
        assert (await csms.call("CP1", call21.ClearChargingProfile(charging_profile_criteria={
            "charging_profile_purpose": "PriorityCharging"}))).status == "Accepted"
        await _pilot_within_1s(agent, 10)
        notified = (await csms.wait_for_call("NotifyPriorityCharging"))[0].payload
        assert notified == {"transactionId": ref, "activated": False}
        assert not agent.station.priority_charging(ref)
        assert csms.schema_errors == []


async def test_v21_an_idle_period_offers_0_a_and_a_v2x_mode_is_refused(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        await _pilot_within_1s(agent, 32)
        v2x = _profile(12, "TxDefaultProfile", [{"start_period": 0, "limit": 16, "operation_mode": "CentralSetpoint"}])
        refused = await _set(csms, 1, v2x)
        assert refused.status == "Rejected" and "V2X" in refused.status_info["additional_info"]
        start = time.time() - 1
        idle = _profile(13, "TxDefaultProfile", [{"start_period": 0, "limit": 16, "operation_mode": "Idle"},
                                                 {"start_period": 3, "limit": 16, "operation_mode": "ChargingOnly"}],
                        start=start)
        assert (await _set(csms, 1, idle)).status == "Accepted"
        await _pilot_within_1s(agent, 0)  # no energy transfer while the Idle period is in force
        assert (await csms.call("CP1", call21.GetChargingProfiles(request_id=4, charging_profile={
            "charging_profile_id": [13]}))).status == "Accepted"
        report = (await csms.wait_for_call("ReportChargingProfiles"))[0].payload
        periods = report["chargingProfile"][0]["chargingSchedule"][0]["chargingSchedulePeriod"]
        assert [p.get("operationMode") for p in periods] == ["Idle", "ChargingOnly"]
        await wait_until(lambda: _pilot(agent) == 16, timeout=start + 3 + 1.0 - time.time(), interval=0.01)
        assert csms.schema_errors == []


async def test_v21_the_external_limit_shows_as_a_charging_station_external_constraints_profile(tmp_path, csms):
    async with running_agent(limit_config(tmp_path, csms)) as agent:
        await csms.wait_for_call("StatusNotification")
        answer = await csms.call("CP1", call21.GetChargingProfiles(request_id=6, charging_profile={}))
        assert answer.status == "NoProfiles"  # input released, no profile of the CSMS
        await switch(agent, True)
        await csms.wait_for_call("NotifyChargingLimit")
        answer = await csms.call("CP1", call21.GetChargingProfiles(request_id=7, charging_profile={
            "charging_profile_purpose": "ChargingStationExternalConstraints"}))
        assert answer.status == "Accepted"
        report = (await csms.wait_for_call("ReportChargingProfiles"))[0].payload
        assert report["chargingLimitSource"] == "EMS" and report["evseId"] == 0
        (profile,) = report["chargingProfile"]
        assert profile["id"] < 0 and profile["chargingProfilePurpose"] == "ChargingStationExternalConstraints"
        assert profile["chargingSchedule"][0]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 6.0}]
        assert (await csms.call("CP1", call21.GetChargingProfiles(request_id=8, charging_profile={
            "charging_limit_source": ["CSO"]}))).status == "NoProfiles"
        composite = await csms.call("CP1", call21.GetCompositeSchedule(duration=60, evse_id=1))
        assert composite.schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 6.0}]
        assert csms.schema_errors == []
