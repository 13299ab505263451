"""OCPP 2.1 on the wire, against the test CSMS over a real WebSocket: the subprotocol, strict 2.1 schemas
both ways, and the RPC rules the `ocpp` library (2.1.0) gets wrong or lacks (CALLRESULTERROR, SEND,
answers to CALLs without a handler)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging

from ocpp.v21 import call as call21

from tests.harness import agent_config, running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events, reach_status

_ids = itertools.count(1)
STREAM = {"id": 1, "pending": 0, "basetime": "2025-01-01T00:00:00Z", "data": [{"t": 0.0, "v": "230.1"}]}


async def raw_call(csms, action: str, payload: dict) -> list:
    """Send a CALL as raw text and return the station's reply frame (CALLRESULT or CALLERROR)."""
    message_id = f"raw-{next(_ids)}"
    await csms.send_raw("CP1", json.dumps([2, message_id, action, payload]))
    return await csms.wait_for(lambda: next((f.parsed() for f in csms.frames if f.direction == "in"
                                             and (f.parsed() or [None, None])[1] == message_id), None))


def station_frames(csms, kind: int) -> list[list]:
    return [p for f in csms.frames if f.direction == "in" and (p := f.parsed()) is not None and p[0] == kind]


async def test_v21_a_whole_session_speaks_strict_21(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        assert csms.stations["CP1"].websocket.subprotocol == "ocpp2.1"
        assert agent.session.adapter.ocpp_version == "2.1"
        await charge(agent, csms)
        await csms.wait_for(lambda: any(e["triggerReason"] == "MeterValuePeriodic" for e in events(csms)))
        agent.hal.tap(CARD)
        await csms.wait_for(lambda: events(csms)[-1]["eventType"] == "Ended")
        agent.hal.unplug(1)
        await reach_status(csms, "Available")
        started = events(csms)[0]
        assert started["eventType"] == "Started" and started["transactionInfo"]["operationMode"] == "ChargingOnly"
        # Every CALL the station sent passed the CSMS's 2.1 schemas, and nothing was refused either way.
        assert csms.schema_errors == []
        assert station_frames(csms, 4) == []
        assert [p for f in csms.frames if f.direction == "out" and (p := f.parsed()) and p[0] == 4] == []


async def test_v21_an_agent_on_21_refuses_a_csms_without_ocpp21(tmp_path, csms201, caplog):
    caplog.set_level(logging.INFO)
    async with running_agent(agent_config(tmp_path, csms201.url, ocpp_version="2.1")) as agent:
        await wait_until(lambda: "did not accept subprotocol ocpp2.1" in caplog.text, timeout=5)
        assert not agent.session.connected.is_set() and csms201.calls("BootNotification") == []


async def test_v21_callresulterror_is_logged_counted_and_changes_nothing(tmp_path, csms, caplog):
    caplog.set_level(logging.WARNING, logger="agent.ocpp21")
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        request = call21.GetVariables(get_variable_data=[{"component": {"name": "OCPPCommCtrlr"},
                                                          "variable": {"name": "HeartbeatInterval"}}])
        await csms.call("CP1", request)
        answered = csms.message_id_of_call("CP1", "GetVariables")
        await csms.send_callresult_error("CP1", answered, "PropertyConstraintViolation", "attributeValue unknown")
        await wait_until(lambda: agent.session.adapter.callresult_errors == 1)
        assert agent.session.adapter.last_callresult_error == (answered, "PropertyConstraintViolation",
                                                                "attributeValue unknown")
        assert f"CSMS could not take our CALLRESULT '{answered}': PropertyConstraintViolation" in caplog.text
        # Nothing answers it, and the connection goes on: the next request is answered as before.
        again = await csms.call("CP1", request)
        assert again.get_variable_result[0]["attribute_status"] == "Accepted"
        assert [p for p in station_frames(csms, 4) + station_frames(csms, 3) if p[1] == answered][1:] == []
        assert agent.session.connected.is_set() and len(csms.calls("BootNotification")) == 1


async def test_v21_calls_without_a_handler_are_answered_as_ocpp_j_says(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        # Known to 2.1, not offered here (the library would drop these unanswered): NotSupported.
        for action, payload in (("SetDERControl", {}), ("RequestBatterySwap", {}), ("AFRRSignal", {}),
                                ("NotifyPeriodicEventStream", STREAM), ("BootNotification", {})):
            reply = await raw_call(csms, action, payload)
            assert reply[0] == 4 and reply[2] == "NotSupported", (action, reply)
        # Not an OCPP 2.1 action at all: NotImplemented.
        reply = await raw_call(csms, "SetTariff", {})
        assert reply[0] == 4 and reply[2] == "NotImplemented" and "not an OCPP 2.1 action" in reply[3]
        assert agent.session.connected.is_set()


async def test_v21_schemas_are_21s_in_both_directions(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        # 2.0.1 allows a negative severity; 2.1's schema does not: refused before any handler runs.
        reply = await raw_call(csms, "SetMonitoringLevel", {"severity": -1})
        assert reply[:3] == [4, reply[1], "PropertyConstraintViolation"]
        # A log type only 2.1 has passes the schema and is answered (Rejected, with the reason).
        reply = await raw_call(csms, "GetLog", {"logType": "DataCollectorLog", "requestId": 1,
                                                "log": {"remoteLocation": "https://example.invalid/upload"}})
        assert reply[0] == 3 and reply[2]["status"] == "Rejected"
        assert reply[2]["statusInfo"]["reasonCode"] == "UnsupportedParam"
        # An additional property is a FormatViolation, worded as 2.1 (and 2.0.1) spell it.
        reply = await raw_call(csms, "ClearCache", {"unexpected": 1})
        assert reply[2] == "FormatViolation" and len(json.dumps(reply)) < 400
        assert agent.session.connected.is_set()


async def test_v21_send_frames_reach_the_csms_unanswered(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        adapter = agent.session.adapter
        assert await adapter.send_unanswered("NotifyPeriodicEventStream", STREAM)
        [send] = await csms.wait_for(lambda: csms.sends)
        assert (send.action, send.payload) == ("NotifyPeriodicEventStream", STREAM)
        assert csms.schema_errors == []
        # A SEND from the CSMS (2.1 has none for a station) is dropped, unanswered; the link goes on.
        await csms.send_raw("CP1", json.dumps([6, "csms-send-1", "NotifyPeriodicEventStream", STREAM]))
        await asyncio.sleep(0.2)
        assert not any(p[1] == "csms-send-1" for p in station_frames(csms, 3) + station_frames(csms, 4))
        assert (await raw_call(csms, "ClearCache", {}))[0] == 3


async def test_v21_the_test_csms_is_strict_and_answers_what_the_library_drops(csms):
    """The CSMS side of the suite: a station's invalid CALL or SEND is refused and recorded, and a 2.1 CALL
    the CSMS has no handler for is answered (the library alone would leave it unanswered)."""
    from websockets.asyncio.client import connect

    async with connect(f"{csms.url}/RAW1", subprotocols=["ocpp2.1"]) as ws:
        assert ws.subprotocol == "ocpp2.1"
        await ws.send(json.dumps([2, "b1", "BootNotification", {"reason": "PowerUp", "bogus": 1,
                                                                 "chargingStation": {"model": "M", "vendorName": "V"}}]))
        assert json.loads(await ws.recv())[:3] == [4, "b1", "FormatViolation"]
        await ws.send(json.dumps([2, "b2", "BatterySwap", {}]))  # a 2.1 action this CSMS does not handle
        assert json.loads(await ws.recv())[:3] == [4, "b2", "NotSupported"]
        await ws.send(json.dumps([2, "b3", "MakeCoffee", {}]))
        assert json.loads(await ws.recv())[:3] == [4, "b3", "NotImplemented"]
        await ws.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", {"id": 1}]))  # pending, basetime, data missing
        await csms.wait_for(lambda: csms.sends)
    assert [e.split(":")[0] for e in csms.schema_errors] == ["BootNotification", "SEND NotifyPeriodicEventStream"]
