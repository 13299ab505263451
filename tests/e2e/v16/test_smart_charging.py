"""OCPP 1.6 Smart Charging end to end: profiles from the CSMS reach the pilot's current offer."""

import asyncio
import time
from datetime import datetime, timezone

import pytest
from ocpp.v16 import call as call16

from tests.harness import agent_config, running_agent, wait_until

CARD = "04A1B2C3"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def profile(profile_id, purpose, periods, *, stack_level=0, start=None, kind="Absolute", unit="A", **extra):
    schedule = {"charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": s, "limit": limit} for s, limit in periods]}
    if start is not None:
        schedule["start_schedule"] = iso(start)
    return {"charging_profile_id": profile_id, "stack_level": stack_level, "charging_profile_purpose": purpose,
            "charging_profile_kind": kind, "charging_schedule": schedule, **extra}


async def charging(agent, csms):
    await csms.wait_for_call("StatusNotification")
    agent.hal.plug(1)
    agent.hal.tap(CARD)
    await csms.wait_for_call("StartTransaction")
    agent.hal.ev_charge(1, True)
    await wait_until(lambda: agent.hal.evse(1).contactor.closed)


def offered(agent):
    return agent.hal.evse(1).pilot.current_limit_A


async def test_smart16_schedule_boundaries_reach_the_pilot(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await charging(agent, csms)
        start = float(int(time.time()))
        body = profile(1, "TxDefaultProfile", [(0, 16), (2, 0), (4, 10)], start=start)
        assert (await csms.call("CP1", call16.SetChargingProfile(connector_id=1, cs_charging_profiles=body))).status \
            == "Accepted"
        await wait_until(lambda: offered(agent) == 16, timeout=1)
        await wait_until(lambda: offered(agent) == 0, timeout=start + 3 - time.time())  # within 1 s of the boundary
        await wait_until(lambda: not agent.hal.evse(1).contactor.closed)
        await wait_until(lambda: agent.station.evses[1].status.value == "SuspendedEVSE")
        await wait_until(lambda: offered(agent) == 10, timeout=start + 5 - time.time())
        await wait_until(lambda: agent.hal.evse(1).contactor.closed)
        result = await csms.call("CP1", call16.GetCompositeSchedule(connector_id=1, duration=3600))
        assert result.status == "Accepted"
        assert result.charging_schedule["charging_schedule_period"][-1]["limit"] == 10.0


async def test_smart16_station_max_caps_and_clear_restores(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await charging(agent, csms)
        body = profile(7, "ChargePointMaxProfile", [(0, 8)], start=time.time() - 10)
        assert (await csms.call("CP1", call16.SetChargingProfile(connector_id=0, cs_charging_profiles=body))).status \
            == "Accepted"
        await wait_until(lambda: offered(agent) == 8)
        assert (await csms.call("CP1", call16.ClearChargingProfile(id=7))).status == "Accepted"
        await wait_until(lambda: offered(agent) == 32)
        assert (await csms.call("CP1", call16.ClearChargingProfile(id=7))).status == "Unknown"


@pytest.mark.parametrize("body, connector", [
    (profile(1, "TxDefaultProfile", [(0, 16)], stack_level=99, start=0), 1),  # stack level over the maximum
    (profile(1, "TxDefaultProfile", [(10, 16), (0, 8)], start=0), 1),  # periods out of order
    (profile(1, "TxProfile", [(0, 16)], start=0), 1),  # no transaction running
    (profile(1, "ChargePointMaxProfile", [(0, 16)], start=0), 1),  # station maximum on a connector
])
async def test_smart16_bad_profiles_rejected_and_not_stored(tmp_path, csms, body, connector):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await csms.wait_for_call("StatusNotification")
        result = await csms.call("CP1", call16.SetChargingProfile(connector_id=connector, cs_charging_profiles=body))
        assert result.status == "Rejected"
        assert list(agent.station.profiles) == []


async def test_smart16_remote_start_tx_profile_applies_to_its_transaction(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await csms.wait_for_call("StatusNotification")
        agent.hal.plug(1)
        agent.hal.ev_charge(1, True)
        body = profile(3, "TxProfile", [(0, 6)], kind="Relative")
        result = await csms.call("CP1", call16.RemoteStartTransaction(id_tag="APP1", connector_id=1,
                                                                      charging_profile=body))
        assert result.status == "Accepted"
        await csms.wait_for_call("StartTransaction")
        await wait_until(lambda: offered(agent) == 6)
        agent.hal.unplug(1)
        await csms.wait_for_call("StopTransaction")
        await wait_until(lambda: list(agent.station.profiles) == [])  # a TxProfile ends with its transaction
