"""OCPP 2.0.1 end to end, continued: EVSE reset, TxStartPoint/TxStopPoint, master pass, idToken types,
TriggerMessage TransactionEvent and NotifyEvent for hardware faults."""

import asyncio
import json

import pytest
from ocpp.v201 import call as call201

from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events, reach_status, statuses


@pytest.fixture
async def csms(csms):
    """The simulator, answering NotifyEvent itself (it has no handler for it) and keeping what came."""
    csms.notify_events = []

    def answer_notify_event(station_id, text):
        frame = json.loads(text)
        if frame[0] == 2 and frame[2] == "NotifyEvent":
            csms.notify_events.append(frame[3])
            return json.dumps([3, frame[1], {}])
        return None

    csms.behaviour.frame_hook = answer_notify_event
    return csms


def two_evses(tmp_path, csms, **variables):
    return agent_config(tmp_path, csms.url, ocpp_version="2.0.1", evses=2,
                        variables={"SampledDataCtrlr.TxUpdatedInterval": 1, **variables})


def of(csms, event_type):
    return [e for e in events(csms) if e["eventType"] == event_type]


async def charge_on(agent, csms, evse, card):
    agent.hal.plug(evse)
    await reach_status(csms, "Occupied", evse=evse)
    agent.hal.tap(card, evse)
    await wait_until(lambda: agent.station.evses[evse].transaction is not None)
    agent.hal.ev_charge(evse, True)
    await wait_until(lambda: agent.hal.evse(evse).contactor.closed)


# ------------------------------------------------------------------ B11/B12: reset of one EVSE

async def test_core201_reset_one_evse_immediate_ends_only_its_transaction(tmp_path, csms):
    async with running_agent(two_evses(tmp_path, csms)) as agent:
        await reach_status(csms, "Available", evse=2)
        await charge_on(agent, csms, 1, CARD)
        await charge_on(agent, csms, 2, "CARD-TWO")
        tx2 = agent.station.evses[2].transaction.ref
        before = len(statuses(csms, 1))
        result = await csms.call("CP1", call201.Reset(type="Immediate", evse_id=1))
        assert result.status == "Accepted"
        await wait_until(lambda: of(csms, "Ended"))
        ended = of(csms, "Ended")[0]
        assert ended["evse"]["id"] == 1
        assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert ended["triggerReason"] == "ResetCommand"
        await wait_until(lambda: len(statuses(csms, 1)) > before)  # re-reported after the reset
        assert statuses(csms, 1)[-1] == "Occupied"  # the cable is still in
        hw = agent.hal.evse(1)
        assert not hw.contactor.closed and hw.pilot.current_limit_A == 0 and not hw.lock.locked
        # The other EVSE charges on; the station did not restart.
        assert agent.station.evses[2].transaction.ref == tx2 and agent.hal.evse(2).contactor.closed
        assert len(csms.calls("BootNotification")) == 1
        assert (await csms.call("CP1", call201.Reset(type="Immediate", evse_id=7))).status == "Rejected"


async def test_core201_reset_one_evse_on_idle_waits_for_its_transaction(tmp_path, csms):
    async with running_agent(two_evses(tmp_path, csms)) as agent:
        await reach_status(csms, "Available", evse=2)
        result = await csms.call("CP1", call201.Reset(type="OnIdle", evse_id=2))
        assert result.status == "Accepted"  # idle: at once
        await charge_on(agent, csms, 1, CARD)
        result = await csms.call("CP1", call201.Reset(type="OnIdle", evse_id=1))
        assert result.status == "Scheduled"
        await asyncio.sleep(0.3)
        assert agent.station.evses[1].transaction is not None and agent.hal.evse(1).contactor.closed
        before = len(statuses(csms, 1))
        agent.hal.tap(CARD, 1)
        await wait_until(lambda: of(csms, "Ended"))
        assert of(csms, "Ended")[0]["transactionInfo"]["stoppedReason"] == "Local"
        await wait_until(lambda: len(statuses(csms, 1)) > before)
        assert not agent.hal.evse(1).lock.locked and len(csms.calls("BootNotification")) == 1


# ------------------------------------------------------------------ TxStartPoint / TxStopPoint

async def test_core201_start_at_ev_connected_then_idtoken_in_updated(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"TxCtrlr.TxStartPoint": "EVConnected"})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available")
        agent.hal.plug(1)
        await wait_until(lambda: of(csms, "Started"))
        started = of(csms, "Started")[0]
        assert started["triggerReason"] == "CablePluggedIn" and "idToken" not in started
        assert started["transactionInfo"]["chargingState"] == "EVConnected"
        agent.hal.ev_charge(1, True)
        await asyncio.sleep(0.3)
        hw = agent.hal.evse(1)
        assert not hw.contactor.closed and hw.pilot.current_limit_A == 0 and not hw.lock.locked  # no token yet
        agent.hal.tap(CARD)
        await wait_until(lambda: hw.contactor.closed)
        # The Updated event goes through the outbox, concurrently with the contactor: wait for it.
        await wait_until(lambda: any(e.get("idToken") for e in events(csms)))
        updated = next(e for e in events(csms) if e.get("idToken"))
        assert updated["eventType"] == "Updated" and updated["triggerReason"] == "Authorized"
        assert updated["idToken"] == {"idToken": CARD, "type": "ISO14443"}
        assert updated["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
        assert hw.lock.locked
        agent.hal.tap(CARD)  # TxStopPoint Authorized (default): the stop tap ends it
        await wait_until(lambda: of(csms, "Ended"))
        assert of(csms, "Ended")[0]["transactionInfo"]["stoppedReason"] == "Local"
    evs = events(csms)
    assert [e["seqNo"] for e in evs] == list(range(len(evs)))


async def test_core201_start_at_ev_connected_ends_at_unplug_without_token(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"TxCtrlr.TxStartPoint": "EVConnected"})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available")
        agent.hal.plug(1)
        await wait_until(lambda: of(csms, "Started"))
        agent.hal.unplug(1)
        await wait_until(lambda: of(csms, "Ended"))
        ended = of(csms, "Ended")[0]
        assert ended["transactionInfo"]["stoppedReason"] == "EVDisconnected" and "idToken" not in ended


async def test_core201_request_start_completes_a_transaction_started_at_plug_in(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"TxCtrlr.TxStartPoint": "EVConnected"})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available")
        agent.hal.plug(1)
        await wait_until(lambda: of(csms, "Started"))
        tx_id = of(csms, "Started")[0]["transactionInfo"]["transactionId"]
        profile = {"id": 21, "stack_level": 0, "charging_profile_purpose": "TxProfile",
                   "charging_profile_kind": "Relative",
                   "charging_schedule": [{"id": 1, "charging_rate_unit": "A",
                                          "charging_schedule_period": [{"start_period": 0, "limit": 10}]}]}
        result = await csms.call("CP1", call201.RequestStartTransaction(
            id_token={"id_token": "EMAID-1", "type": "eMAID"}, remote_start_id=5, evse_id=1,
            charging_profile=profile))
        assert result.status == "Accepted" and result.transaction_id == tx_id
        await wait_until(lambda: any(e.get("idToken") for e in events(csms)))
        updated = next(e for e in events(csms) if e.get("idToken"))
        assert updated["triggerReason"] == "RemoteStart" and updated["transactionInfo"]["remoteStartId"] == 5
        assert updated["idToken"] == {"idToken": "EMAID-1", "type": "eMAID"}
        # Its TxProfile is for the transaction that already runs, not for the next one.
        assert [p.transaction_ref for p in agent.station.profiles if p.profile_id == 21] == [tx_id]
        await wait_until(lambda: agent.hal.evse(1).pilot.current_limit_A == 10)


async def test_core201_stop_at_ev_connected_lasts_until_unplug(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"TxCtrlr.TxStopPoint": "EVConnected"})
    async with running_agent(cfg) as agent:
        await charge(agent, csms)
        agent.hal.tap(CARD)  # stop authorization: the energy stops, the transaction goes on
        await wait_until(lambda: any(e["triggerReason"] == "StopAuthorized" for e in events(csms)))
        hw = agent.hal.evse(1)
        await wait_until(lambda: not hw.lock.locked)
        assert not hw.contactor.closed and hw.pilot.current_limit_A == 0
        history = [(d, v) for _, d, v in agent.hal.history if d in ("evse1.contactor", "evse1.lock")]
        assert history.index(("evse1.contactor", False)) < history.index(("evse1.lock", False))
        await wait_until(lambda: any(e["triggerReason"] == "StopAuthorized" for e in events(csms)))
        stop = next(e for e in events(csms) if e["triggerReason"] == "StopAuthorized")
        assert stop["eventType"] == "Updated" and stop["transactionInfo"]["chargingState"] == "EVConnected"
        await asyncio.sleep(0.3)
        assert not of(csms, "Ended") and agent.station.evses[1].transaction is not None
        agent.hal.unplug(1)
        await wait_until(lambda: of(csms, "Ended"))
        ended = of(csms, "Ended")[0]
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert ended["triggerReason"] == "EVCommunicationLost"
        assert ended["idToken"] == {"idToken": CARD, "type": "ISO14443"}


async def test_core201_start_at_authorized_times_out_without_cable(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"TxCtrlr.TxStartPoint": "Authorized", "TxCtrlr.EVConnectionTimeOut": 1})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available")
        agent.hal.tap(CARD)
        await wait_until(lambda: of(csms, "Started"))
        started = of(csms, "Started")[0]
        assert started["triggerReason"] == "Authorized" and started["transactionInfo"]["chargingState"] == "Idle"
        assert started["idToken"]["idToken"] == CARD
        await wait_until(lambda: of(csms, "Ended"), timeout=4)
        ended = of(csms, "Ended")[0]
        assert ended["transactionInfo"]["stoppedReason"] == "Timeout" and ended["triggerReason"] == "EVConnectTimeout"


async def test_core201_start_at_authorized_then_cable(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"TxCtrlr.TxStartPoint": "Authorized"})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available")
        agent.hal.tap(CARD)
        await wait_until(lambda: of(csms, "Started"))
        assert not agent.hal.evse(1).lock.locked  # nothing to lock yet
        agent.hal.plug(1)
        await wait_until(lambda: any(e["triggerReason"] == "CablePluggedIn" for e in events(csms)))
        plugged = next(e for e in events(csms) if e["triggerReason"] == "CablePluggedIn")
        assert plugged["eventType"] == "Updated" and plugged["transactionInfo"]["chargingState"] != "Idle"
        await wait_until(lambda: agent.hal.evse(1).lock.locked)
        agent.hal.ev_charge(1, True)
        await wait_until(lambda: agent.hal.evse(1).contactor.closed)


async def test_core201_stop_at_energy_transfer_ends_when_the_ev_stops(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"TxCtrlr.TxStopPoint": "EnergyTransfer"})
    async with running_agent(cfg) as agent:
        await charge(agent, csms)
        agent.hal.ev_charge(1, False)
        await wait_until(lambda: of(csms, "Ended"))
        assert of(csms, "Ended")[0]["transactionInfo"]["stoppedReason"] == "StoppedByEV"
        await wait_until(lambda: not agent.hal.evse(1).lock.locked)


async def test_core201_transaction_points_refuse_what_cannot_be_honoured(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)):
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call201.SetVariables(set_variable_data=[
            {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"},
             "attribute_value": "ParkingBayOccupancy"},
            {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStopPoint"}, "attribute_value": ""},
            {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStopPoint"},
             "attribute_value": "EVConnected,Authorized"},
        ]))
        assert [r["attribute_status"] for r in result.set_variable_result] == ["Rejected", "Rejected", "Accepted"]


# ------------------------------------------------------------------ C16: master pass

MASTER = "MASTER-1"


async def install_master_pass(csms):
    result = await csms.call("CP1", call201.SendLocalList(version_number=1, update_type="Full",
                                                          local_authorization_list=[
        {"id_token": {"id_token": MASTER, "type": "ISO14443"},
         "id_token_info": {"status": "Accepted", "group_id_token": {"id_token": "MASTERS", "type": "Central"}}}]))
    assert result.status == "Accepted"


async def test_core201_master_pass_stops_any_transaction_but_starts_none(tmp_path, csms):
    cfg = two_evses(tmp_path, csms, **{"AuthCtrlr.MasterPassGroupId": "Masters", "AuthCtrlr.LocalPreAuthorize": True})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available", evse=2)
        await install_master_pass(csms)
        await charge_on(agent, csms, 1, CARD)
        agent.hal.tap(MASTER, 1)
        await wait_until(lambda: of(csms, "Ended"))
        ended = of(csms, "Ended")[0]
        assert ended["transactionInfo"]["stoppedReason"] == "MasterPass"
        assert ended["triggerReason"] == "StopAuthorized"
        assert ended["idToken"] == {"idToken": MASTER, "type": "ISO14443"}
        agent.hal.plug(2)
        await reach_status(csms, "Occupied", evse=2)
        agent.hal.tap(MASTER, 2)
        await asyncio.sleep(0.3)
        assert agent.station.evses[2].transaction is None and len(of(csms, "Started")) == 1


# ------------------------------------------------------------------ idToken types

async def test_core201_remote_start_keeps_the_csms_token_type_in_authorize_and_events(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"AuthCtrlr.AuthorizeRemoteStart": True})
    async with running_agent(cfg) as agent:
        agent.hal.plug(1)
        await reach_status(csms, "Occupied")
        result = await csms.call("CP1", call201.RequestStartTransaction(
            id_token={"id_token": "KEY-42", "type": "KeyCode"}, remote_start_id=3))
        assert result.status == "Accepted"
        await wait_until(lambda: of(csms, "Started"))
        assert csms.calls("Authorize")[0].payload["idToken"] == {"idToken": "KEY-42", "type": "KeyCode"}
        assert of(csms, "Started")[0]["idToken"] == {"idToken": "KEY-42", "type": "KeyCode"}
        # The verdict is cached under the token AND its type.
        cache = agent.core.authorizer._cache
        assert cache.get("KEY-42", "KeyCode") is not None and cache.get("KEY-42", "ISO14443") is None


async def test_core201_local_list_entries_are_keyed_by_type(tmp_path, csms):
    cfg = config(tmp_path, csms, **{"AuthCtrlr.LocalPreAuthorize": True})
    async with running_agent(cfg) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call201.SendLocalList(version_number=1, update_type="Full",
                                                              local_authorization_list=[
            {"id_token": {"id_token": "SAME", "type": "ISO14443"}, "id_token_info": {"status": "Blocked"}},
            {"id_token": {"id_token": "SAME", "type": "eMAID"}, "id_token_info": {"status": "Accepted"}},
            {"id_token": {"id_token": "OTHER", "type": "eMAID"}, "id_token_info": {"status": "Accepted"}},
            {"id_token": {"id_token": CARD, "type": "ISO14443"}, "id_token_info": {"status": "Accepted"}}]))
        assert result.status == "Accepted"
        local = agent.core.local_list
        assert local.lookup("SAME", "ISO14443").status.value == "Blocked"
        assert local.lookup("same", "eMAID").status.value == "Accepted"
        assert local.lookup("SAME", "Central") is None
        agent.hal.plug(1)
        agent.hal.tap("other")  # a card (ISO14443): the eMAID entry is another token; the CSMS is asked
        await csms.wait_for_call("Authorize")
        assert csms.calls("Authorize")[0].payload["idToken"] == {"idToken": "OTHER", "type": "ISO14443"}
        await wait_until(lambda: of(csms, "Started"))
        agent.hal.tap("other")
        await wait_until(lambda: of(csms, "Ended"))
        agent.hal.tap(CARD)  # listed as a card: pre-authorized without asking
        await wait_until(lambda: len(of(csms, "Started")) == 2)
        assert len(csms.calls("Authorize")) == 1


# ------------------------------------------------------------------ F06: TriggerMessage TransactionEvent

async def test_core201_trigger_message_transaction_event(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call201.TriggerMessage(requested_message="TransactionEvent",
                                                               evse={"id": 1}))
        assert result.status == "Rejected"  # nothing to report
        await charge(agent, csms)
        result = await csms.call("CP1", call201.TriggerMessage(requested_message="TransactionEvent",
                                                               evse={"id": 1}))
        assert result.status == "Accepted"
        await wait_until(lambda: any(e["triggerReason"] == "Trigger" for e in events(csms)))
        triggered = next(e for e in events(csms) if e["triggerReason"] == "Trigger")
        assert triggered["eventType"] == "Updated"
        assert triggered["transactionInfo"]["transactionId"] == agent.station.evses[1].transaction.ref
        assert triggered["transactionInfo"]["chargingState"] == "Charging"
        assert triggered["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    evs = events(csms)
    assert [e["seqNo"] for e in evs] == list(range(len(evs)))


# ------------------------------------------------------------------ NotifyEvent for hardware faults

async def test_core201_hardware_faults_raise_and_clear_notify_event(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        agent.hal.inject_fault(1, "rcd-trip")
        await wait_until(lambda: csms.notify_events)
        await reach_status(csms, "Faulted")
        raised = csms.notify_events[0]
        assert raised["seqNo"] == 0 and not raised.get("tbc")
        [data] = raised["eventData"]
        assert data["component"] == {"name": "EVSE", "evse": {"id": 1}} and data["variable"] == {"name": "Problem"}
        assert (data["trigger"], data["actualValue"], data["techCode"]) == ("Delta", "true", "rcd-trip")
        assert data["eventNotificationType"] == "HardWiredNotification" and not data.get("cleared")
        agent.hal.clear_fault(1, "rcd-trip")
        await wait_until(lambda: len(csms.notify_events) == 2)
        [cleared] = csms.notify_events[1]["eventData"]
        assert (cleared["actualValue"], cleared["cleared"], cleared["techCode"]) == ("false", True, "rcd-trip")
        assert cleared["eventId"] != data["eventId"]
        await reach_status(csms, "Available")
        agent.hal.inject_fault(1, "reader-offline")  # the station's own reader
        await wait_until(lambda: len(csms.notify_events) == 3)
        [station] = csms.notify_events[2]["eventData"]
        assert station["component"] == {"name": "ChargingStation"} and station["techCode"] == "reader-offline"
        # A fault still present is told again after a reconnection (it may have been raised offline).
        await csms.drop_connections()
        await wait_until(lambda: len(csms.notify_events) == 4, timeout=8)
        assert [d["techCode"] for d in csms.notify_events[3]["eventData"]] == ["reader-offline"]
