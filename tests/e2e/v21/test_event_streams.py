"""Periodic event streams (OCPP 2.1 block N) against the 2.1 test CSMS in strict mode over a real WebSocket:
a periodic monitor marked for streaming opens a stream (OpenPeriodicEventStream), its values go out as
NotifyPeriodicEventStream SENDs at the stream's rate instead of NotifyEvent, AdjustPeriodicEventStream
changes the rate, clearing the monitor closes the stream (ClosePeriodicEventStream), GetPeriodicEventStream
lists the open streams, and values taken offline are dropped, not queued."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from ocpp.v21 import call as call21

from tests.harness import running_agent, wait_until
from tests.harness.v201 import config

VOLTAGE = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Voltage", "instance": "L1-N"}}


async def set_streamed(csms, *, interval: int = 0, values: int = 0, period: int = 1) -> int:
    """A Periodic monitor on EVSE 1's L1 voltage every ``period`` s, streamed at this rate; its id."""
    result = await csms.call("CP1", call21.SetVariableMonitoring(set_monitoring_data=[
        {**VOLTAGE, "type": "Periodic", "value": period, "severity": 5,
         "periodic_event_stream": {"interval": interval, "values": values}}]))
    [outcome] = result.set_monitoring_result
    assert outcome["status"] == "Accepted", outcome
    return outcome["id"]


def stream_sends(csms, stream_id: int) -> list[dict]:
    """The payload of every NotifyPeriodicEventStream SEND of this stream, oldest first."""
    return [s.payload for s in csms.sends if s.action == "NotifyPeriodicEventStream" and s.payload["id"] == stream_id]


def events_of(csms, monitor_id: int) -> list[dict]:
    """Every NotifyEvent entry of this monitor."""
    return [e for r in csms.calls("NotifyEvent") for e in r.payload["eventData"]
            if e.get("variableMonitoringId") == monitor_id]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_event_stream_opened_sent_at_its_rate_adjusted_listed_and_closed(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)):
        await csms.wait_for_call("StatusNotification")
        monitor = await set_streamed(csms, values=2)
        [opening] = await csms.wait_for_call("OpenPeriodicEventStream")
        assert opening.payload == {"constantStreamData": {"id": monitor, "variableMonitoringId": monitor,
                                                          "params": {"interval": 0, "values": 2}}}
        # Two values a message, one value a second.
        first = await csms.wait_for(lambda: (s := stream_sends(csms, monitor)) and len(s) >= 2 and s, timeout=8)
        for message in first[:2]:
            assert message["pending"] == 0 and [d["v"] for d in message["data"]] == ["230", "230"]
            assert message["data"][0]["t"] == 0 and 0.5 <= message["data"][1]["t"] <= 1.6
        listed = await csms.call("CP1", call21.GetPeriodicEventStream())
        assert listed.constant_stream_data == [{"id": monitor, "variable_monitoring_id": monitor,
                                                "params": {"interval": 0, "values": 2}}]

        adjusted = await csms.call("CP1", call21.AdjustPeriodicEventStream(id=monitor, params={"values": 1}))
        assert adjusted.status == "Accepted"
        seen = len(stream_sends(csms, monitor))
        later = await csms.wait_for(lambda: (s := stream_sends(csms, monitor)[seen:]) and len(s) >= 2 and s,
                                    timeout=5)
        assert all(len(m["data"]) == 1 for m in later[-2:])  # the new rate: one value a message
        unknown = await csms.call("CP1", call21.AdjustPeriodicEventStream(id=monitor + 99, params={"values": 1}))
        assert unknown.status == "Rejected" and unknown.status_info["reason_code"] == "UnknownId"

        cleared = await csms.call("CP1", call21.ClearVariableMonitoring(id=[monitor]))
        assert cleared.clear_monitoring_result[0]["status"] == "Accepted"
        [closing] = await csms.wait_for_call("ClosePeriodicEventStream")
        assert closing.payload == {"id": monitor}
        stopped = len(stream_sends(csms, monitor))
        await asyncio.sleep(1.5)
        assert len(stream_sends(csms, monitor)) == stopped  # closed: nothing more
        assert (await csms.call("CP1", call21.GetPeriodicEventStream())).constant_stream_data is None
        assert events_of(csms, monitor) == []  # the stream carried its values, never NotifyEvent
        assert csms.schema_errors == []


async def test_event_stream_values_taken_offline_are_dropped_not_queued(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await csms.wait_for_call("StatusNotification")
        monitor = await set_streamed(csms, interval=2)  # whatever a monitor took in 2 s, every 2 s
        await csms.wait_for_call("OpenPeriodicEventStream")
        await csms.wait_for(lambda: stream_sends(csms, monitor), timeout=5)
        assert 1 <= len(stream_sends(csms, monitor)[0]["data"]) <= 3
        port = csms.port
        await csms.stop()
        await wait_until(lambda: agent.station.port is None, timeout=3)
        await asyncio.sleep(1.5)  # values taken while nobody can hear them
        before = len(stream_sends(csms, monitor))
        back = time.time()
        await csms.start(port=port)
        resumed = await csms.wait_for(lambda: stream_sends(csms, monitor)[before:], timeout=10)
        assert all(epoch(m["basetime"]) >= back - 0.05 for m in resumed)  # none taken offline
        assert len(csms.calls("OpenPeriodicEventStream")) == 1  # the stream stays open across the outage
        assert events_of(csms, monitor) == [] and csms.schema_errors == []


async def test_event_stream_only_for_periodic_monitors_and_without_one_a_monitor_reports_events(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)):
        await csms.wait_for_call("StatusNotification")
        result = await csms.call("CP1", call21.SetVariableMonitoring(set_monitoring_data=[
            {**VOLTAGE, "type": "UpperThreshold", "value": 260, "severity": 5,
             "periodic_event_stream": {"interval": 1, "values": 1}},
            {**VOLTAGE, "type": "Periodic", "value": 1, "severity": 6}]))
        threshold, plain = result.set_monitoring_result
        assert threshold["status"] == "Rejected" and "Periodic" in threshold["status_info"]["additional_info"]
        assert plain["status"] == "Accepted"
        await csms.wait_for(lambda: events_of(csms, plain["id"]), timeout=5)  # NotifyEvent as in 2.0.1
        assert csms.calls("OpenPeriodicEventStream") == [] and csms.sends == []
        assert csms.schema_errors == []
