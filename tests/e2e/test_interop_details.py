"""Details a real CSMS relies on (issue 14, parts 5-8): the chargingSchedule id as set, chargingState from
the pilot at the end, the remote starts the specs refuse, the CSMS's verdict on a card as it gave it, and
which Basic auth password wins."""

from __future__ import annotations

import logging
import time

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.runtime.clock import format_iso
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events, reach_status


def ended(csms) -> list[dict]:
    """Every TransactionEvent Ended, oldest first."""
    return [e for e in events(csms) if e["eventType"] == "Ended"]


# ------------------------------------------------------------------ 5: schedule ids


@pytest.mark.parametrize("ocpp_version", ["2.0.1"])
async def test_interop_report_charging_profiles_keeps_the_schedule_id(tmp_path, csms):
    profile = {"id": 301, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
               "charging_profile_kind": "Absolute", "valid_to": format_iso(time.time() + 3600),
               "charging_schedule": [{"id": 7, "charging_rate_unit": "A", "start_schedule": format_iso(time.time()),
                                      "min_charging_rate": 6.0,
                                      "charging_schedule_period": [{"start_period": 0, "limit": 16}]}]}
    async with running_agent(config(tmp_path, csms)):
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call201.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert result.status == "Accepted"
        result = await csms.call("CP1", call201.GetChargingProfiles(
            request_id=9, charging_profile={"charging_profile_id": [301]}))
        assert result.status == "Accepted"
        report = (await csms.wait_for_call("ReportChargingProfiles"))[0].payload
    (reported,) = report["chargingProfile"]
    (schedule,) = reported["chargingSchedule"]
    assert (reported["id"], schedule["id"]) == (301, 7)
    assert schedule["minChargingRate"] == 6.0 and "validTo" in reported


# ------------------------------------------------------------------ 6: chargingState at the end


@pytest.mark.parametrize("ocpp_version", ["2.0.1"])
async def test_interop_ended_charging_state_comes_from_the_pilot(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        tx_id = events(csms)[0]["transactionInfo"]["transactionId"]
        assert (await csms.call("CP1", call201.RequestStopTransaction(transaction_id=tx_id))).status == "Accepted"
        await csms.wait_for(lambda: ended(csms))
        # The remote stop leaves the EV plugged in: EVConnected, not Idle (no EV connected).
        assert ended(csms)[0]["transactionInfo"]["chargingState"] == "EVConnected"
        agent.hal.unplug(1)
        await reach_status(csms, "Available")
        await charge(agent, csms)
        agent.hal.unplug(1)  # this one ends with the cable (StopTxOnEVSideDisconnect)
        await csms.wait_for(lambda: len(ended(csms)) == 2)
    last = ended(csms)[1]["transactionInfo"]
    assert (last["stoppedReason"], last["chargingState"]) == ("EVDisconnected", "Idle")


# ------------------------------------------------------------------ 7: remote starts the specs refuse


async def test_interop_remote_start_refused_for_connector_0_and_while_pending_16(tmp_path, csms_factory):
    csms = await csms_factory("1.6", boot_status="Pending", heartbeat_interval=1)
    async with running_agent(agent_config(tmp_path, csms.url)):
        await csms.wait_for_call("BootNotification", count=2)  # the first answer (Pending) has been read
        start = call16.RemoteStartTransaction(id_tag=CARD, connector_id=1)
        assert (await csms.call("CP1", start)).status == "Rejected"  # not while Pending (1.6 4.2)
        csms.behaviour.boot_status = "Accepted"
        await csms.wait_for_call("StatusNotification", timeout=5)  # accepted at the next boot
        zero = call16.RemoteStartTransaction(id_tag=CARD, connector_id=0)
        assert (await csms.call("CP1", zero)).status == "Rejected"  # connectorId must be > 0
        assert (await csms.call("CP1", start)).status == "Accepted"


async def test_interop_request_start_refused_for_evse_0_and_while_pending_201(tmp_path, csms_factory):
    csms = await csms_factory("2.0.1", boot_status="Pending", heartbeat_interval=1)
    token = {"id_token": CARD, "type": "ISO14443"}
    async with running_agent(config(tmp_path, csms)):
        await csms.wait_for_call("BootNotification", count=2)  # the first answer (Pending) has been read
        start = call201.RequestStartTransaction(id_token=token, remote_start_id=1, evse_id=1)
        assert (await csms.call("CP1", start)).status == "Rejected"  # not while Pending (B02)
        csms.behaviour.boot_status = "Accepted"
        await csms.wait_for_call("StatusNotification", timeout=5)
        zero = call201.RequestStartTransaction(id_token=token, remote_start_id=2, evse_id=0)
        assert (await csms.call("CP1", zero)).status == "Rejected"  # evseId must be > 0
        assert (await csms.call("CP1", start)).status == "Accepted"


# ------------------------------------------------------------------ 8: the CSMS's verdict, the password


@pytest.mark.parametrize("ocpp_version", ["2.0.1"])
@pytest.mark.csms(authorize_status="Unknown")
async def test_interop_a_card_the_csms_calls_unknown_is_shown_as_unknown(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        agent.hal.plug(1)
        await reach_status(csms, "Occupied")
        agent.hal.tap(CARD)
        await wait_until(lambda: "Card refused: Unknown" in agent.hal.recorder.values("display"))
    assert "Card refused: Invalid" not in agent.hal.recorder.values("display")


async def test_interop_the_password_the_csms_set_wins_over_the_config_and_is_logged(tmp_path, csms_factory,
                                                                                    caplog):
    file_password, csms_password = "file-password-0001", "csms-password-0002"
    csms = await csms_factory("1.6", password=file_password)
    cfg = agent_config(tmp_path, csms.url, csms={"security_profile": 1, "password": file_password})
    async with running_agent(cfg):
        await csms.wait_for_call("StatusNotification")
        result = await csms.call("CP1", call16.ChangeConfiguration(key="AuthorizationKey", value=csms_password))
        assert result.status == "Accepted"
    csms.behaviour.password = csms_password  # the CSMS now expects its own password
    with caplog.at_level(logging.INFO):
        async with running_agent(cfg):
            await csms.wait_for_call("BootNotification", count=2)
    assert ("csms.password in the config is overridden by the password the CSMS set (AuthorizationKey)"
            in caplog.text)
    assert file_password not in caplog.text and csms_password not in caplog.text
