"""Fault reports survive being offline, against the test CSMS over real WebSockets.

2.0.1: a hardware fault raised and cleared while the CSMS is down reaches it once it is back, as two
NotifyEvents in order with the times the fault changed, through the durable outbox as
MonitoringCtrlr.OfflineQueuingSeverity says (a fault that stops charging is a HardwareFailure, 1,
queued under the default 4; a warning, 6, is not, but its clearing is when its raising was told).
1.6: the CSMS gets the current StatusNotification of every connector whose status or error code
changed meanwhile, and only of those (the agent resumes on its accepted boot, without a new one).
"""

from __future__ import annotations

import asyncio

import pytest

from agent.protocol.common.status_reports import CONFIRMED_KEY
from agent.runtime.clock import unix_time
from agent.testcsms.server import CsmsSimulator
from tests.harness import agent_config, running_agent, wait_until
from tests.harness import v16, v201


async def go_offline(agent, csms) -> int:
    """Stop the CSMS and wait until the agent has noticed; returns its port, to come back on."""
    port = csms.port
    await csms.stop()
    await wait_until(lambda: not agent.session.connected.is_set())
    return port


def fault_records(agent) -> list[dict]:
    """The fault reports waiting in the outbox, oldest first."""
    return [i.payload for i in agent.store.outbox.pending() if i.action == "FaultEvent"]


def has_fault(agent, code: str, evse: int) -> bool:
    """Whether the station has ``code`` raised, on the EVSE or (reader-offline) on itself."""
    return code in agent.station.station_fault_codes() or code in agent.station.evse(evse).faults


async def change_fault(agent, code: str, *, active: bool, queued: bool | None = True,
                       evse: int = 1) -> tuple[float, float]:
    """Raise or clear ``code`` on an EVSE and wait until the station has handled it: its report queued
    (``queued`` True), or not (False), or either (None). Returns the station time before and after."""
    count = len(fault_records(agent))
    before = agent.clock.time()
    (agent.hal.inject_fault if active else agent.hal.clear_fault)(evse, code)
    if queued:
        await wait_until(lambda: len(fault_records(agent)) == count + 1)
    else:
        await wait_until(lambda: has_fault(agent, code, evse) == active)
        await asyncio.sleep(0.1)  # the report, if any, is written right after the EVSE took the fault
        if queued is False:
            assert len(fault_records(agent)) == count
    return before, agent.clock.time()


def fault_data(csms) -> list[dict]:
    """Every eventData of every NotifyEvent the CSMS received, oldest first."""
    return [d for r in csms.calls("NotifyEvent") for d in r.payload["eventData"]]


async def test_offline_faults_201_raised_and_cleared_offline_reach_the_csms_in_order_with_their_times(
        tmp_path, csms201):
    async with running_agent(v201.config(tmp_path, csms201)) as agent:
        await v201.reach_status(csms201, "Available")
        # Online: a warning is told at once.
        agent.hal.inject_fault(1, "reader-offline")
        await csms201.wait_for(lambda: [d["techCode"] for d in fault_data(csms201)] == ["reader-offline"])
        await wait_until(lambda: not fault_records(agent))  # answered, not only received
        port = await go_offline(agent, csms201)
        raised = await change_fault(agent, "rcd-trip", active=True)
        cleared = await change_fault(agent, "rcd-trip", active=False)
        await change_fault(agent, "reader-offline", active=False)  # its raising was told: the clearing goes
        await change_fault(agent, "reader-offline", active=True, queued=False)  # a warning, offline: not queued
        await change_fault(agent, "reader-offline", active=False, queued=False)
        assert [(r["code"], r["active"]) for r in fault_records(agent)] == [
            ("rcd-trip", True), ("rcd-trip", False), ("reader-offline", False)]
        back = CsmsSimulator(ocpp_version="2.0.1")
        await back.start(port=port)
        try:
            await back.wait_for(lambda: len(fault_data(back)) >= 3, timeout=10)
            await wait_until(lambda: not fault_records(agent))
            data = fault_data(back)
        finally:
            await back.stop()
    assert [(d["techCode"], d["actualValue"], bool(d.get("cleared"))) for d in data] == [
        ("rcd-trip", "true", False), ("rcd-trip", "false", True), ("reader-offline", "false", True)]
    assert data[0]["component"] == {"name": "EVSE", "evse": {"id": 1}}
    assert data[2]["component"] == {"name": "ChargingStation"}
    ids = [d["eventId"] for d in data]
    assert ids == sorted(ids) and len(set(ids)) == 3
    for d, (before, after) in zip(data, (raised, cleared)):
        assert before - 0.01 <= unix_time(d["timestamp"]) <= after + 0.01, (d["timestamp"], before, after)


async def test_offline_faults_201_offline_queuing_severity_0_drops_hardware_failures_offline(tmp_path, csms201):
    cfg = v201.config(tmp_path, csms201, **{"MonitoringCtrlr.OfflineQueuingSeverity": 0})
    async with running_agent(cfg) as agent:
        await v201.reach_status(csms201, "Available")
        port = await go_offline(agent, csms201)
        await change_fault(agent, "rcd-trip", active=True, queued=False)
        await change_fault(agent, "rcd-trip", active=False, queued=False)
        back = CsmsSimulator(ocpp_version="2.0.1")
        await back.start(port=port)
        try:
            await back.wait_for_station("CP1", timeout=10)
            await wait_until(lambda: agent.session.connected.is_set() and agent.store.outbox.head() is None)
            await asyncio.sleep(0.5)
        finally:
            await back.stop()
    assert fault_data(back) == []


def status16(csms, connector: int) -> tuple[str, str] | None:
    """(status, errorCode) of the last StatusNotification of ``connector``."""
    found = [(r.payload["status"], r.payload["errorCode"]) for r in csms.calls("StatusNotification")
             if r.payload["connectorId"] == connector]
    return found[-1] if found else None


@pytest.mark.parametrize("ocpp_version", ["1.6"])
async def test_offline_faults_16_current_statuses_reach_the_csms_after_the_outage(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url, evses=2)) as agent:
        await v16.reach_status(csms, "Available", connector=2)
        # Answered, not only received: what the CSMS confirmed is what a resumed connection compares with.
        await wait_until(lambda: len(agent.store.get(CONFIRMED_KEY, {})) == 3)
        port = await go_offline(agent, csms)
        await change_fault(agent, "rcd-trip", active=True, queued=None)  # connector 1 faulted
        await change_fault(agent, "reader-offline", active=True, queued=None)  # the charge point's own reader
        await change_fault(agent, "rcd-trip", active=True, queued=None, evse=2)  # and back: no change to tell
        await change_fault(agent, "rcd-trip", active=False, queued=None, evse=2)
        back = CsmsSimulator(ocpp_version="1.6")
        await back.start(port=port)
        try:
            await back.wait_for(lambda: status16(back, 1) == ("Faulted", "GroundFailure")
                                and status16(back, 0) == ("Available", "ReaderFailure"), timeout=10)
            await asyncio.sleep(0.5)
        finally:
            await back.stop()
    assert status16(back, 2) is None  # unchanged while offline: the CSMS still has it right
    assert "NotifyEvent" not in {r.action for r in back.received}
