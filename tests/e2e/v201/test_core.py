"""OCPP 2.0.1 end to end: the same charging core, TransactionEvent and the 2.0.1 remote-control set."""

import asyncio

from ocpp.v201 import call as call201

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events, reach_status, statuses


async def test_core201_full_session_with_transaction_events(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        await charge(agent, csms)
        assert csms.calls("Authorize")[0].payload["idToken"] == {"idToken": CARD, "type": "ISO14443"}
        await csms.wait_for(lambda: any(e["triggerReason"] == "MeterValuePeriodic" for e in events(csms)), timeout=4)
        agent.hal.tap(CARD)
        await csms.wait_for(lambda: any(e["eventType"] == "Ended" for e in events(csms)))
        agent.hal.unplug(1)
        await reach_status(csms, "Available")
    evs = events(csms)
    started, ended = evs[0], evs[-1]
    assert started["eventType"] == "Started" and started["idToken"]["idToken"] == CARD
    assert started["evse"] == {"id": 1, "connectorId": 1}
    tx_id = started["transactionInfo"]["transactionId"]
    assert all(e["transactionInfo"]["transactionId"] == tx_id for e in evs)
    assert [e["seqNo"] for e in evs] == list(range(len(evs)))  # no gaps, in order
    assert any(e["transactionInfo"].get("chargingState") == "Charging" for e in evs)
    assert ended["transactionInfo"]["stoppedReason"] == "Local" and ended["triggerReason"] == "StopAuthorized"
    assert statuses(csms) == ["Available", "Occupied", "Available"]


async def test_core201_request_start_and_stop(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        agent.hal.plug(1)
        await reach_status(csms, "Occupied")
        result = await csms.call("CP1", call201.RequestStartTransaction(
            id_token={"id_token": "APP-USER-1", "type": "Central"}, remote_start_id=77))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: events(csms))
        started = events(csms)[0]
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 77
        assert started["idToken"] == {"idToken": "APP-USER-1", "type": "Central"}
        tx_id = started["transactionInfo"]["transactionId"]
        status = await csms.call("CP1", call201.GetTransactionStatus(transaction_id=tx_id))
        assert status.ongoing_indicator is True
        result = await csms.call("CP1", call201.RequestStopTransaction(transaction_id=tx_id))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: events(csms)[-1]["eventType"] == "Ended")
        assert events(csms)[-1]["transactionInfo"]["stoppedReason"] == "Remote"
        result = await csms.call("CP1", call201.RequestStopTransaction(transaction_id="nope"))
        assert result.status == "Rejected"
        await asyncio.sleep(0.2)
        status = await csms.call("CP1", call201.GetTransactionStatus(transaction_id=tx_id))
        assert status.ongoing_indicator is False and status.messages_in_queue is False


async def test_core201_unlock_connector_statuses(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        result = await csms.call("CP1", call201.UnlockConnector(evse_id=1, connector_id=1))
        assert result.status == "OngoingAuthorizedTransaction"
        result = await csms.call("CP1", call201.UnlockConnector(evse_id=3, connector_id=1))
        assert result.status == "UnknownConnector"
        agent.hal.tap(CARD)
        await csms.wait_for(lambda: events(csms)[-1]["eventType"] == "Ended")
        result = await csms.call("CP1", call201.UnlockConnector(evse_id=1, connector_id=1))
        assert result.status == "Unlocked"


async def test_core201_change_availability_station_and_evse(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call201.ChangeAvailability(operational_status="Inoperative",
                                                                   evse={"id": 1}))
        assert result.status == "Accepted"
        await reach_status(csms, "Unavailable")
        await charge_blocked(agent, csms)
        result = await csms.call("CP1", call201.ChangeAvailability(operational_status="Operative"))
        assert result.status == "Accepted"
        await reach_status(csms, "Occupied")  # still plugged in


async def charge_blocked(agent, csms):
    agent.hal.plug(1)
    agent.hal.tap(CARD)
    await asyncio.sleep(0.3)
    assert not events(csms)


async def test_core201_trigger_message(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)):
        await reach_status(csms, "Available")
        before = len(csms.calls("StatusNotification"))
        result = await csms.call("CP1", call201.TriggerMessage(requested_message="StatusNotification", evse={"id": 1}))
        assert result.status == "Accepted"
        await csms.wait_for_call("StatusNotification", count=before + 1)
        result = await csms.call("CP1", call201.TriggerMessage(requested_message="MeterValues"))
        assert result.status == "Accepted"
        await csms.wait_for_call("MeterValues")
        result = await csms.call("CP1", call201.TriggerMessage(requested_message="SignV2GCertificate"))
        assert result.status == "NotImplemented"
        result = await csms.call("CP1", call201.TriggerMessage(requested_message="BootNotification"))
        assert result.status == "Rejected"


async def test_core201_offline_session_marked_offline_and_delivered(tmp_path, csms):
    agent_cfg = config(tmp_path, csms, **{"AuthCtrlr.OfflineTxForUnknownIdEnabled": True})
    async with running_agent(agent_cfg) as agent:
        await reach_status(csms, "Available")
        port = csms.port
        await csms.stop()
        await wait_until(lambda: not agent.session.connected.is_set())
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        agent.hal.ev_charge(1, True)
        await wait_until(lambda: agent.station.evses[1].transaction is not None)
        await asyncio.sleep(1.2)
        agent.hal.tap(CARD)
        await wait_until(lambda: agent.station.evses[1].transaction is None)
        back = CsmsSimulator(ocpp_version=csms.ocpp_version)
        await back.start(port=port)
        try:
            await back.wait_for(lambda: any(r.payload["eventType"] == "Ended" for r in back.calls("TransactionEvent")),
                                timeout=10)
            evs = [r.payload for r in back.calls("TransactionEvent")]
            assert [e["seqNo"] for e in evs] == list(range(len(evs)))
            assert evs[0]["eventType"] == "Started" and all(e.get("offline") for e in evs)
        finally:
            await back.stop()


async def test_core201_graceful_stop_ends_with_reboot_and_boot_reason(tmp_path, csms):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        await charge(agent, csms)
    async with running_agent(cfg):
        await csms.wait_for(lambda: events(csms)[-1]["eventType"] == "Ended")
        assert events(csms)[-1]["transactionInfo"]["stoppedReason"] == "Reboot"
        assert csms.calls("BootNotification")[-1].payload["reason"] == "LocalReset"  # a controlled stop


async def test_core201_get_and_set_variables_share_the_1_6_store(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call201.GetVariables(get_variable_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}},
            {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}},
        ]))
        statuses_ = [(r["attribute_status"], r.get("attribute_value")) for r in result.get_variable_result]
        assert statuses_ == [("Accepted", "300"), ("UnknownComponent", None), ("Accepted", "Available")]
        result = await csms.call("CP1", call201.SetVariables(set_variable_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attribute_value": "120"},
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}, "attribute_value": "-5"},
            {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}, "attribute_value": "x"},
        ]))
        assert [r["attribute_status"] for r in result.set_variable_result] == ["Accepted", "Rejected", "Rejected"]
        assert agent.settings["heartbeat_interval_s"] == 120
        known, _ = agent.core.configuration.get_ocpp16(["HeartbeatInterval"])
        assert known[0].value == "120"  # the 1.6 key reads the same value


async def test_core201_full_inventory_report_in_chunks(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)):
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call201.GetBaseReport(request_id=7, report_base="FullInventory"))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: any(not r.payload.get("tbc") for r in csms.calls("NotifyReport")), timeout=5)
        reports = [r.payload for r in csms.calls("NotifyReport")]
        assert [r["seqNo"] for r in reports] == list(range(len(reports)))
        assert all(r["requestId"] == 7 for r in reports)
        names = {(d["component"]["name"], d["variable"]["name"]) for r in reports for d in r["reportData"]}
        assert ("OCPPCommCtrlr", "HeartbeatInterval") in names and ("EVSE", "AvailabilityState") in names


async def test_core201_basic_auth_password_change_applies_next_connection_and_is_never_logged(tmp_path, caplog):
    from agent.runtime.message_log import MessageLog

    old, new = "old-password-0123456", "new-password-6543210"
    sim = CsmsSimulator(ocpp_version="2.0.1", behaviour=CsmsBehaviour(password=old))
    await sim.start()
    try:
        cfg = agent_config(tmp_path, sim.url, ocpp_version="2.0.1", csms={"security_profile": 1, "password": old})
        async with running_agent(cfg):
            await sim.wait_for_call("StatusNotification")
            result = await sim.call("CP1", call201.SetVariables(set_variable_data=[
                {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
                 "attribute_value": new}]))
            assert result.set_variable_result[0]["attribute_status"] == "Accepted"
            get = await sim.call("CP1", call201.GetVariables(get_variable_data=[
                {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}]))
            assert get.get_variable_result[0]["attribute_status"] == "Rejected"  # write-only
            sim.behaviour.password = new  # the CSMS switches over
            await sim.drop_connections()
            await sim.wait_for(lambda: sim.connections == 2 and "CP1" in sim.stations, timeout=8)
        frames = MessageLog(tmp_path / "data" / "messages.sqlite").query(limit=None)
        assert not any(new in f.frame for f in frames)
        assert new not in caplog.text
    finally:
        await sim.stop()


async def test_core201_security_events_startup_and_reboot(tmp_path, csms):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg):
        await csms.wait_for_call("SecurityEventNotification")
    kinds = lambda: [r.payload["type"] for r in csms.calls("SecurityEventNotification")]  # noqa: E731
    async with running_agent(cfg):
        await csms.wait_for(lambda: "ResetOrReboot" in kinds())
    # The first record may be delivered twice if the stop came before its answer was committed.
    assert kinds()[0] == "StartupOfTheDevice" and kinds()[-1] == "ResetOrReboot"
    assert set(kinds()) == {"StartupOfTheDevice", "ResetOrReboot"}


async def test_core201_smart_charging_profiles(tmp_path, csms):
    import time as _time
    from datetime import datetime as _dt, timezone as _tz

    start = _dt.fromtimestamp(_time.time() - 5, tz=_tz.utc).isoformat().replace("+00:00", "Z")
    tx_default = {"id": 11, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
                  "charging_profile_kind": "Absolute",
                  "charging_schedule": [{"id": 1, "charging_rate_unit": "A", "start_schedule": start,
                                         "charging_schedule_period": [{"start_period": 0, "limit": 13}]}]}
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        result = await csms.call("CP1", call201.SetChargingProfile(evse_id=1, charging_profile=tx_default))
        assert result.status == "Accepted"
        await wait_until(lambda: agent.hal.evse(1).pilot.current_limit_A == 13)
        # The running transaction's new rate is reported (E: triggerReason ChargingRateChanged).
        await wait_until(lambda: any(e["triggerReason"] == "ChargingRateChanged" for e in events(csms)))
        changed = next(e for e in events(csms) if e["triggerReason"] == "ChargingRateChanged")
        assert changed["eventType"] == "Updated" and changed["transactionInfo"]["chargingState"] == "Charging"
        composite = await csms.call("CP1", call201.GetCompositeSchedule(duration=600, evse_id=1))
        assert composite.schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 13.0}]
        result = await csms.call("CP1", call201.GetChargingProfiles(request_id=5, charging_profile={
            "charging_profile_purpose": "TxDefaultProfile"}))
        assert result.status == "Accepted"
        report = (await csms.wait_for_call("ReportChargingProfiles"))[0].payload
        assert report["requestId"] == 5 and report["chargingProfile"][0]["id"] == 11
        result = await csms.call("CP1", call201.ClearChargingProfile(charging_profile_id=11))
        assert result.status == "Accepted"
        await wait_until(lambda: agent.hal.evse(1).pilot.current_limit_A == 32)
        bad = dict(tx_default, stack_level=999)
        assert (await csms.call("CP1", call201.SetChargingProfile(evse_id=1, charging_profile=bad))).status \
            == "Rejected"
