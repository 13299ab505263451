"""2.1 dynamic charging profiles against the test CSMS over a real WebSocket (strict 2.1 schemas both
ways): a Dynamic TxDefaultProfile is installed, its limit changed by UpdateDynamicSchedule (the pilot
follows within a second, GetCompositeSchedule and GetChargingProfiles show it, a restart keeps it) and
by the answers to the station's own PullDynamicScheduleUpdate at dynUpdateInterval."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from ocpp.v21 import call as call21

from tests.harness import running_agent, wait_until
from tests.harness.v201 import charge, config, reach_status


def dynamic(profile_id: int, limit: float, **extra) -> dict:
    """A Dynamic TxDefaultProfile on its one period (no startSchedule: it holds from now on)."""
    return {"id": profile_id, "stack_level": 1, "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Dynamic",
            "charging_schedule": [{"id": 1, "charging_rate_unit": "A",
                                   "charging_schedule_period": [{"start_period": 0, "limit": limit}]}], **extra}


async def composite_limits(csms) -> list[dict]:
    result = await csms.call("CP1", call21.GetCompositeSchedule(duration=300, evse_id=1))
    return result.schedule["charging_schedule_period"]


def limit_now(agent) -> float:
    """The limit EVSE 1's composite schedule gives now (A), as the station computes it."""
    return agent.core.station.composite(1, duration_s=60, rate_unit="A").periods[0].limit


async def update(csms, profile_id: int, **schedule_update):
    return await csms.call("CP1", call21.UpdateDynamicSchedule(charging_profile_id=profile_id,
                                                               schedule_update=schedule_update))


async def test_v21_update_dynamic_schedule_moves_the_pilot_and_survives_a_restart(tmp_path, csms):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        await charge(agent, csms)
        result = await csms.call("CP1", call21.SetChargingProfile(evse_id=1, charging_profile=dynamic(21, 16)))
        assert result.status == "Accepted"
        await wait_until(lambda: agent.hal.evse(1).pilot.current_limit_A == 16)
        before = time.time()
        assert (await update(csms, 21, limit=10.0)).status == "Accepted"
        await wait_until(lambda: agent.hal.evse(1).pilot.current_limit_A == 10, timeout=1.0)
        assert await composite_limits(csms) == [{"start_period": 0, "limit": 10.0}]
        assert (await csms.call("CP1", call21.GetChargingProfiles(request_id=4, charging_profile={
            "charging_profile_id": [21]}))).status == "Accepted"
        reported = (await csms.wait_for_call("ReportChargingProfiles"))[0].payload["chargingProfile"][0]
        assert reported["chargingProfileKind"] == "Dynamic"
        assert reported["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == 10.0
        updated_at = reported["dynUpdateTime"].replace("Z", "+00:00")
        assert before - 1 <= datetime.fromisoformat(updated_at).timestamp() <= time.time() + 1
        # Refused with the reason: no such profile, not a Dynamic one, what an AC pilot cannot do.
        static = dict(dynamic(22, 20, stack_level=0), charging_profile_kind="Absolute")
        static["charging_schedule"][0]["start_schedule"] = "2025-01-01T00:00:00Z"
        assert (await csms.call("CP1", call21.SetChargingProfile(evse_id=1, charging_profile=static))).status \
            == "Accepted"
        for profile_id, fields, words in ((99, {"limit": 8.0}, "no charging profile 99"),
                                          (22, {"limit": 8.0}, "not Dynamic"),
                                          (21, {"limit": 8.0, "discharge_limit": -3000.0}, "V2X"),
                                          (21, {"setpoint": 3000.0}, "V2X")):
            result = await update(csms, profile_id, **fields)
            assert result.status == "Rejected" and words in result.status_info["additional_info"], result
        assert agent.hal.evse(1).pilot.current_limit_A == 10
        assert csms.schema_errors == []
    async with running_agent(cfg) as agent:  # the updated limit is persisted with the profile
        await csms.wait_for_call("BootNotification", count=2)
        assert await composite_limits(csms) == [{"start_period": 0, "limit": 10.0}]
        assert (await update(csms, 21, limit=12.0)).status == "Accepted"
        assert await composite_limits(csms) == [{"start_period": 0, "limit": 12.0}]


async def test_v21_the_station_pulls_updates_at_the_dyn_update_interval_until_the_profile_goes(tmp_path, csms,
                                                                                              caplog):
    csms.behaviour.dynamic_update = {"limit": 8.0}
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call21.SetChargingProfile(evse_id=1, charging_profile=dynamic(
            31, 16, dyn_update_interval=1)))
        assert result.status == "Accepted"
        set_at = time.monotonic()
        pulls = await csms.wait_for_call("PullDynamicScheduleUpdate", timeout=10.0)
        assert pulls[0].payload == {"chargingProfileId": 31} and time.monotonic() - set_at >= 0.9
        await wait_until(lambda: limit_now(agent) == 8.0, timeout=3.0)
        csms.behaviour.dynamic_update = {"limit": 6.0}
        await csms.stop()  # a pull falls due while offline: not attempted, and sent once registered again
        await asyncio.sleep(1.2)
        before = len(csms.calls("PullDynamicScheduleUpdate"))
        await csms.start(port=csms.port)
        await csms.wait_for_call("PullDynamicScheduleUpdate", count=before + 1, timeout=10.0)
        await wait_until(lambda: limit_now(agent) == 6.0, timeout=3.0)
        assert await composite_limits(csms) == [{"start_period": 0, "limit": 6.0}]
        assert "not answered" not in caplog.text
        assert (await csms.call("CP1", call21.ClearChargingProfile(charging_profile_id=31))).status == "Accepted"
        count = len(csms.calls("PullDynamicScheduleUpdate"))
        await asyncio.sleep(1.2)
        assert len(csms.calls("PullDynamicScheduleUpdate")) == count  # the timer went with the profile
        assert csms.schema_errors == []
