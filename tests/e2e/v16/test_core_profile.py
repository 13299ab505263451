"""OCPP 1.6 Core profile end to end: a real CSMS over WebSocket, the charging core, the mock HAL."""

import asyncio

import pytest
from ocpp.v16 import call as call16

from agent.core.charging.model import AuthorizationStatus, IdTokenInfo
from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v16 import CARD, charge_session, reach_status, statuses

FAST = {"MeterValueSampleInterval": 1, "ConnectionTimeOut": 30}


async def test_core16_full_session_tap_charge_tap_unplug(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url, configuration=FAST)) as agent:
        await reach_status(csms, "Available")
        start = await charge_session(agent, csms)
        assert (await csms.wait_for_call("Authorize"))[0].payload == {"idTag": CARD}
        assert start.payload["connectorId"] == 1 and start.payload["idTag"] == CARD
        hw = agent.hal.evse(1)
        assert hw.contactor.closed and hw.contactor.feedback_closed and hw.lock.locked
        assert hw.pilot.current_limit_A == 32.0
        values = (await csms.wait_for_call("MeterValues", timeout=4))[0].payload
        assert values["transactionId"] == 1
        assert values["meterValue"][0]["sampledValue"][0]["measurand"] == "Energy.Active.Import.Register"
        await asyncio.sleep(0.5)
        agent.hal.tap(CARD)  # the same card stops the session
        stop = (await csms.wait_for_call("StopTransaction"))[0].payload
        assert stop["transactionId"] == 1 and stop["reason"] == "Local" and stop["idTag"] == CARD
        assert stop["meterStop"] > start.payload["meterStart"]
        assert not hw.contactor.closed and not hw.lock.locked
        await reach_status(csms, "Finishing")
        agent.hal.unplug(1)
        await reach_status(csms, "Available")
        assert statuses(csms) == ["Available", "Preparing", "SuspendedEV", "Charging", "Finishing", "Available"]


async def test_core16_contactor_opens_before_the_lock_releases(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await charge_session(agent, csms)
        agent.hal.tap(CARD)
        await csms.wait_for_call("StopTransaction")
        history = [(device, value) for _, device, value in agent.hal.history if device.startswith("evse1.")]
        opened = max(i for i, entry in enumerate(history) if entry == ("evse1.contactor", False))
        released = max(i for i, entry in enumerate(history) if entry[0] == "evse1.lock" and entry[1] is False)
        assert opened < released


async def test_core16_tap_before_plug_then_plug_starts(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await reach_status(csms, "Available")
        agent.hal.tap(CARD)
        await reach_status(csms, "Preparing")
        agent.hal.plug(1)
        start = (await csms.wait_for_call("StartTransaction"))[0]
        assert start.payload["idTag"] == CARD
        await reach_status(csms, "SuspendedEV")  # plugged, EV not asking yet


async def test_core16_rejected_card_starts_nothing(tmp_path, csms):
    csms.behaviour.authorize_status = "Invalid"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        agent.hal.plug(1)
        await reach_status(csms, "Preparing")
        agent.hal.tap(CARD)
        await csms.wait_for_call("Authorize")
        await asyncio.sleep(0.3)
        assert not csms.calls("StartTransaction")
        assert not agent.hal.evse(1).contactor.closed


async def test_core16_unplug_ends_the_transaction(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await charge_session(agent, csms)
        agent.hal.unplug(1)
        stop = (await csms.wait_for_call("StopTransaction"))[0].payload
        assert stop["reason"] == "EVDisconnected"
        await reach_status(csms, "Available")


async def test_core16_remote_start_and_remote_stop(tmp_path, csms):
    config = agent_config(tmp_path, csms.url, configuration={"AuthorizeRemoteTxRequests": True})
    async with running_agent(config) as agent:
        await reach_status(csms, "Available")
        agent.hal.plug(1)
        await reach_status(csms, "Preparing")
        result = await csms.call("CP1", call16.RemoteStartTransaction(id_tag="REMOTE1", connector_id=1))
        assert result.status == "Accepted"
        start = (await csms.wait_for_call("StartTransaction"))[0].payload
        assert start["idTag"] == "REMOTE1"
        assert csms.calls("Authorize")  # AuthorizeRemoteTxRequests
        # The CSMS knows the transaction by the id it answered with; wait until the agent has it too.
        await wait_until(lambda: agent.station.journal.by_remote_id("1") is not None)
        result = await csms.call("CP1", call16.RemoteStopTransaction(transaction_id=1))
        assert result.status == "Accepted"
        stop = (await csms.wait_for_call("StopTransaction"))[0].payload
        assert stop["reason"] == "Remote"
        result = await csms.call("CP1", call16.RemoteStopTransaction(transaction_id=99))
        assert result.status == "Rejected"


async def test_core16_remote_start_without_authorize_when_not_required(tmp_path, csms):
    config = agent_config(tmp_path, csms.url, configuration={"AuthorizeRemoteTxRequests": False})
    async with running_agent(config) as agent:
        agent.hal.plug(1)
        await reach_status(csms, "Preparing")
        result = await csms.call("CP1", call16.RemoteStartTransaction(id_tag="REMOTE1"))
        assert result.status == "Accepted"
        await csms.wait_for_call("StartTransaction")
        assert not csms.calls("Authorize")


async def test_core16_remote_start_rejected_on_busy_connector(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await charge_session(agent, csms)
        result = await csms.call("CP1", call16.RemoteStartTransaction(id_tag="OTHER", connector_id=1))
        assert result.status == "Rejected"
        result = await csms.call("CP1", call16.RemoteStartTransaction(id_tag="OTHER", connector_id=7))
        assert result.status == "Rejected"


async def test_core16_change_availability_scheduled_then_unavailable(tmp_path, csms):
    config = agent_config(tmp_path, csms.url)
    async with running_agent(config) as agent:
        await charge_session(agent, csms)
        result = await csms.call("CP1", call16.ChangeAvailability(connector_id=1, type="Inoperative"))
        assert result.status == "Scheduled"
        agent.hal.tap(CARD)
        await csms.wait_for_call("StopTransaction")
        agent.hal.unplug(1)
        await reach_status(csms, "Unavailable")
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        await asyncio.sleep(0.3)
        assert len(csms.calls("StartTransaction")) == 1
    csms.received.clear()
    async with running_agent(config):  # persisted across a restart
        await reach_status(csms, "Unavailable")
        result = await csms.call("CP1", call16.ChangeAvailability(connector_id=0, type="Operative"))
        assert result.status == "Accepted"
        await reach_status(csms, "Available")  # a fresh mock HAL starts unplugged


async def test_core16_unlock_connector_stops_then_unlocks(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await charge_session(agent, csms)
        result = await csms.call("CP1", call16.UnlockConnector(connector_id=1))
        assert result.status == "Unlocked"
        stop = (await csms.wait_for_call("StopTransaction"))[0].payload
        assert stop["reason"] == "UnlockCommand"
        assert not agent.hal.evse(1).lock.locked
        result = await csms.call("CP1", call16.UnlockConnector(connector_id=5))
        assert result.status == "NotSupported"


async def test_core16_welded_contactor_stops_and_reports_fault(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await charge_session(agent, csms)
        agent.hal.inject_fault(1, "contactor-welded")
        agent.hal.tap(CARD)
        stop = (await csms.wait_for_call("StopTransaction"))[0].payload
        assert stop["reason"] in ("Local", "Other")
        await csms.wait_for(lambda: any(r.payload["errorCode"] == "PowerSwitchFailure"
                                        for r in csms.calls("StatusNotification")))
        await reach_status(csms, "Faulted")
        assert agent.hal.evse(1).lock.locked  # a welded contactor keeps the cable locked


async def test_core16_get_and_change_configuration(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call16.GetConfiguration(key=["HeartbeatInterval", "NoSuchKey"]))
        assert result.configuration_key == [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        assert result.unknown_key == ["NoSuchKey"]
        result = await csms.call("CP1", call16.ChangeConfiguration(key="MeterValueSampleInterval", value="15"))
        assert result.status == "Accepted"
        assert agent.settings["meter_value_sample_interval_s"] == 15
        result = await csms.call("CP1", call16.ChangeConfiguration(key="MeterValueSampleInterval", value="soon"))
        assert result.status == "Rejected"
        result = await csms.call("CP1", call16.ChangeConfiguration(key="NumberOfConnectors", value="4"))
        assert result.status == "Rejected"
        result = await csms.call("CP1", call16.ChangeConfiguration(key="Bogus", value="1"))
        assert result.status == "NotSupported"
        result = await csms.call("CP1", call16.GetConfiguration())
        keys = {k["key"]: k for k in result.configuration_key}
        assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "1"}


async def test_core16_clear_cache_and_data_transfer(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)):
        await reach_status(csms, "Available")
        assert (await csms.call("CP1", call16.ClearCache())).status == "Accepted"
        result = await csms.call("CP1", call16.DataTransfer(vendor_id="com.example"))
        assert result.status == "UnknownVendorId"


async def test_core16_offline_session_delivered_in_order_after_reconnect(tmp_path, csms):
    config = agent_config(tmp_path, csms.url, configuration={**FAST, "AllowOfflineTxForUnknownId": True})
    async with running_agent(config) as agent:
        await reach_status(csms, "Available")
        port = csms.port
        await csms.stop()
        await wait_until(lambda: not agent.session.connected.is_set())
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        agent.hal.ev_charge(1, True)
        agent.hal.set_power(1, 11000)
        await wait_until(lambda: agent.station.evses[1].transaction is not None)
        await asyncio.sleep(2.2)  # a couple of periodic samples while offline
        agent.hal.tap(CARD)
        await wait_until(lambda: agent.station.evses[1].transaction is None)
        back = CsmsSimulator(ocpp_version="1.6", behaviour=CsmsBehaviour(next_transaction_id=42))
        await back.start(port=port)
        try:
            await back.wait_for_call("StopTransaction", timeout=10)
            tx_actions = [r.action for r in back.received
                          if r.action in ("StartTransaction", "MeterValues", "StopTransaction")]
            assert tx_actions[0] == "StartTransaction" and tx_actions[-1] == "StopTransaction"
            assert tx_actions.count("MeterValues") >= 1
            for r in back.received:
                if r.action in ("MeterValues", "StopTransaction"):
                    assert r.payload["transactionId"] == 42
            stop = back.calls("StopTransaction")[0].payload
            assert stop["meterStop"] >= back.calls("StartTransaction")[0].payload["meterStart"]
        finally:
            await back.stop()


async def test_core16_supported_profiles_and_get_configuration_max_keys(tmp_path, csms):
    from ocpp.exceptions import OccurenceConstraintViolationError

    async with running_agent(agent_config(tmp_path, csms.url, evses=2)) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call16.GetConfiguration(key=["SupportedFeatureProfiles", "NumberOfConnectors"]))
        values = {k["key"]: k["value"] for k in result.configuration_key}
        assert values == {"SupportedFeatureProfiles": "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
                          "NumberOfConnectors": "2"}
        with pytest.raises(OccurenceConstraintViolationError):
            await csms.call("CP1", call16.GetConfiguration(key=[f"K{i}" for i in range(101)]))
        status, _ = await agent.session.adapter.data_transfer("com.example", message_id="hello")
        assert status == "UnknownVendorId"


async def test_core16_graceful_stop_mid_session_ends_with_reboot(tmp_path, csms):
    config = agent_config(tmp_path, csms.url)
    async with running_agent(config) as agent:
        await charge_session(agent, csms)
    async with running_agent(config):
        stop = (await csms.wait_for_call("StopTransaction"))[0].payload
        assert stop["reason"] == "Reboot" and stop["transactionId"] == 1


async def test_core16_ev_disconnect_without_stop_unlocks_and_relocks(tmp_path, csms):
    settings = {"StopTransactionOnEVSideDisconnect": False, "UnlockConnectorOnEVSideDisconnect": True}
    async with running_agent(agent_config(tmp_path, csms.url, configuration=settings)) as agent:
        await charge_session(agent, csms)
        agent.hal.unplug(1)
        await reach_status(csms, "SuspendedEV")
        hw = agent.hal.evse(1)
        assert not hw.contactor.closed and not hw.lock.locked
        assert not csms.calls("StopTransaction")
        agent.hal.plug(1)
        agent.hal.ev_charge(1, True)
        await reach_status(csms, "Charging")
        assert hw.lock.locked and hw.contactor.closed


@pytest.mark.parametrize("stop_on_invalid, expected", [(True, "DeAuthorized"), (False, None)])
async def test_core16_start_refused_by_csms(tmp_path, csms, stop_on_invalid, expected):
    settings = {"StopTransactionOnInvalidId": stop_on_invalid, "LocalPreAuthorize": True,
                "AllowOfflineTxForUnknownId": True}
    async with running_agent(agent_config(tmp_path, csms.url, configuration=settings)) as agent:
        await reach_status(csms, "Available")
        agent.hal.plug(1)
        agent.hal.ev_charge(1, True)
        agent.core.authorizer.remember(CARD, IdTokenInfo(AuthorizationStatus.ACCEPTED))  # cached as good
        csms.behaviour.authorize_status = "Blocked"  # but StartTransaction.conf will say Blocked
        agent.hal.tap(CARD)  # pre-authorized from the cache: no Authorize, the start is what the CSMS judges
        await csms.wait_for_call("StartTransaction")
        if expected:
            stop = (await csms.wait_for_call("StopTransaction"))[0].payload
            assert stop["reason"] == expected
        else:
            await reach_status(csms, "SuspendedEVSE")
            assert not agent.hal.evse(1).contactor.closed


async def test_core16_minimum_status_duration_hides_short_statuses(tmp_path, csms):
    config = agent_config(tmp_path, csms.url, configuration={"MinimumStatusDuration": 1})
    async with running_agent(config) as agent:
        await reach_status(csms, "Available", timeout=3)
        agent.hal.plug(1)
        agent.hal.unplug(1)  # Preparing for a moment only
        await asyncio.sleep(1.3)
        assert "Preparing" not in statuses(csms)
        agent.hal.plug(1)
        await reach_status(csms, "Preparing", timeout=3)


async def test_core16_stop_transaction_carries_transaction_data(tmp_path, csms):
    settings = {"MeterValueSampleInterval": 1, "MeterValuesSampledData": "Power.Active.Import",
                "StopTxnSampledData": "Energy.Active.Import.Register"}
    async with running_agent(agent_config(tmp_path, csms.url, configuration=settings)) as agent:
        await charge_session(agent, csms)
        values = (await csms.wait_for_call("MeterValues", timeout=4))[0].payload
        assert {v["measurand"] for v in values["meterValue"][0]["sampledValue"]} == {"Power.Active.Import"}
        await asyncio.sleep(1.2)
        agent.hal.tap(CARD)
        stop = (await csms.wait_for_call("StopTransaction"))[0].payload
    data = stop["transactionData"]
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert "Sample.Periodic" in contexts
    assert all(mv["sampledValue"][0]["measurand"] == "Energy.Active.Import.Register" for mv in data)


async def test_core16_trigger_message(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url, evses=2)) as agent:
        await reach_status(csms, "Available", connector=2)
        before = len(csms.calls("StatusNotification"))
        result = await csms.call("CP1", call16.TriggerMessage(requested_message="StatusNotification", connector_id=2))
        assert result.status == "Accepted"
        await csms.wait_for_call("StatusNotification", count=before + 1)
        assert csms.calls("StatusNotification")[-1].payload["connectorId"] == 2
        for message in ("Heartbeat", "MeterValues", "BootNotification", "DiagnosticsStatusNotification",
                        "FirmwareStatusNotification"):
            result = await csms.call("CP1", call16.TriggerMessage(requested_message=message))
            assert result.status == "Accepted", message
            await csms.wait_for_call(message, count=2 if message == "BootNotification" else 1)
        assert csms.calls("MeterValues")[0].payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
        result = await csms.call("CP1", call16.TriggerMessage(requested_message="StatusNotification", connector_id=9))
        assert result.status == "Rejected"
