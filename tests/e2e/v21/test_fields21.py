"""Small fields OCPP 2.1 adds, against the 2.1 test CSMS over a real WebSocket (strict schemas both ways):
NotifyEvent ``severity``, TransactionEvent ``numberOfPhasesUsed``, SetDisplayMessage ``messageExtra``."""

from __future__ import annotations

from ocpp.v21 import call as call21

from agent.protocol.v21.display import NO_MESSAGE_EXTRA
from tests.harness import running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events, reach_status


async def test_v21_monitor_event_says_the_monitor_severity(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call21.SetVariableMonitoring(set_monitoring_data=[{
            "value": 0, "type": "Delta", "severity": 3, "component": {"name": "Connector", "evse": {"id": 1,
                                                                                                    "connector_id": 1}},
            "variable": {"name": "AvailabilityState"}}]))
        [monitor] = result.set_monitoring_result
        assert monitor["status"] == "Accepted"
        agent.hal.plug(1)

        def fired():
            return [e for r in csms.calls("NotifyEvent") for e in r.payload["eventData"]
                    if e.get("variableMonitoringId") == monitor["id"]]
        await wait_until(fired)
        assert fired()[0]["severity"] == 3 and fired()[0]["actualValue"] == "Occupied"
        assert csms.schema_errors == []


async def test_v21_transaction_events_say_the_phases_that_carry_current(tmp_path, csms):
    measurands = "Energy.Active.Import.Register,Current.Import"
    async with running_agent(config(tmp_path, csms, **{"SampledDataCtrlr.TxUpdatedMeasurands": measurands})) as agent:
        await reach_status(csms, "Available")
        await charge(agent, csms)  # 7.2 kW on the mock's three-phase EVSE 1
        await wait_until(lambda: any("numberOfPhasesUsed" in e for e in events(csms)), timeout=5)
        periodic = [e for e in events(csms) if e["triggerReason"] == "MeterValuePeriodic"]
        assert periodic and {e.get("numberOfPhasesUsed") for e in periodic} == {3}
        agent.hal.tap(CARD)
        await csms.wait_for(lambda: any(e["eventType"] == "Ended" for e in events(csms)))
        assert csms.schema_errors == []


async def test_v21_display_message_with_message_extra_is_refused_with_the_reason(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        message = {"id": 7, "priority": "AlwaysFront", "message": {"format": "UTF8", "language": "en",
                                                                   "content": "Welcome"},
                   "message_extra": [{"format": "UTF8", "language": "de", "content": "Willkommen"}]}
        result = await csms.call("CP1", call21.SetDisplayMessage(message=message))
        assert result.status == "Rejected" and result.status_info["additional_info"] == NO_MESSAGE_EXTRA
        assert agent.core.display_messages.find() == [] and agent.hal.display.text != "Welcome"
        del message["message_extra"]
        assert (await csms.call("CP1", call21.SetDisplayMessage(message=message))).status == "Accepted"
        assert csms.schema_errors == []
