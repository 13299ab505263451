"""Boot semantics against the test CSMS over real WebSockets: BootNotification after a (re)start of the
agent only (and when triggered), with a reason that says what happened; a reconnection resumes on the boot
the CSMS accepted, sending only what changed while offline and replaying the outbox."""

from __future__ import annotations

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.core.management.security_events import RECONFIGURATION, record_security_event
from tests.harness import agent_config, running_agent, wait_until
from tests.reliability.daemon import Daemon, write_config

CARD = "04A1B2C3"
PLUGGED = {"1.6": "Preparing", "2.0.1": "Occupied"}


@pytest.fixture(params=["1.6", "2.0.1"])
def ocpp_version(request):
    """Tests that take ``csms`` run on both versions."""
    return request.param


def statuses(csms, since: int = 0) -> list[tuple[int, str]]:
    """(connector, status) of every StatusNotification from the ``since``-th CALL on, in either version."""
    return [(r.payload.get("evseId", r.payload.get("connectorId")),
             r.payload.get("status", r.payload.get("connectorStatus")))
            for r in csms.received[since:] if r.action == "StatusNotification"]


def reasons(csms) -> list[str]:
    """The reason of every 2.0.1 BootNotification, oldest first."""
    return [r.payload["reason"] for r in csms.calls("BootNotification")]


async def registered(csms, boots: int = 1) -> None:
    """Wait until the ``boots``-th BootNotification was accepted: the statuses that follow it have arrived."""
    def done():
        actions = [r.action for r in csms.received]
        at = [i for i, action in enumerate(actions) if action == "BootNotification"]
        return len(at) >= boots and "StatusNotification" in actions[at[boots - 1]:]
    await csms.wait_for(done, timeout=8)


async def test_boot_a_reconnection_resumes_sending_what_changed_offline(tmp_path, csms, ocpp_version):
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version=ocpp_version, evses=2)) as agent:
        await csms.wait_for(lambda: {2, 1} <= {c for c, _ in statuses(csms)}, timeout=8)
        # Once the station answers this, it has read the answers to its statuses before it.
        await csms.call("CP1", (call16 if ocpp_version == "1.6" else call201).TriggerMessage(
            requested_message="Heartbeat"))
        await csms.wait_for_call("Heartbeat")
        csms.behaviour.password = "not-the-stations"  # the CSMS drops the station and refuses it a while
        await csms.drop_connections()
        await wait_until(lambda: not agent.session.connected.is_set())
        offline_from = len(csms.received)
        agent.hal.plug(1)  # EVSE 1 changes while offline; EVSE 2 (and 1.6's connector 0) do not
        record_security_event(agent.store, RECONFIGURATION, timestamp=agent.clock.time(), tech_info="offline")
        agent.station.outbox_changed()
        await wait_until(lambda: agent.station.evse(1).status.value == "Preparing")
        csms.behaviour.password = None
        await csms.wait_for(lambda: (1, PLUGGED[ocpp_version]) in statuses(csms, offline_from), timeout=8)
        await csms.wait_for(lambda: any(r.payload.get("techInfo") == "offline"
                                        for r in csms.calls("SecurityEventNotification")))  # the outbox replayed
        assert len(csms.calls("BootNotification")) == 1 and csms.connections == 2
        assert agent.session.adapter.resumed
        assert statuses(csms, offline_from) == [(1, PLUGGED[ocpp_version])]  # only what changed


@pytest.mark.csms(boot_status="Pending")  # and the Pending interval is the 300 s heartbeat: no retry meanwhile
async def test_boot_a_reconnection_after_a_boot_never_accepted_boots_again(tmp_path, csms, ocpp_version):
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version=ocpp_version)) as agent:
        await wait_until(lambda: agent.session.adapter and agent.session.adapter.registration == "Pending")
        await csms.drop_connections()
        await csms.wait_for_call("BootNotification", count=2, timeout=6)
        assert csms.connections == 2


@pytest.mark.csms(boot_status="Pending")
async def test_boot_triggered_while_pending_goes_at_once(tmp_path, csms, ocpp_version):
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version=ocpp_version)) as agent:
        await wait_until(lambda: agent.session.adapter and agent.session.adapter.registration == "Pending")
        csms.behaviour.boot_status = "Accepted"
        trigger = (call16.TriggerMessage(requested_message="BootNotification") if ocpp_version == "1.6"
                   else call201.TriggerMessage(requested_message="BootNotification"))
        assert (await csms.call("CP1", trigger)).status == "Accepted"
        await csms.wait_for_call("BootNotification", count=2, timeout=3)  # not after the 300 s Pending interval
        await wait_until(lambda: agent.session.adapter.registration == "Accepted")
        if ocpp_version == "2.0.1":
            assert reasons(csms) == ["PowerUp", "Triggered"]
            rejected = await csms.call("CP1", trigger)  # once accepted, a triggered boot is refused (F06.FR.17)
            assert rejected.status == "Rejected"
        assert len(csms.calls("BootNotification")) == 2


@pytest.mark.parametrize("ocpp_version", ["2.0.1"])
async def test_boot_reasons_of_restarts(tmp_path, csms):
    config = agent_config(tmp_path, csms.url, ocpp_version="2.0.1")
    async with running_agent(config) as agent:
        await registered(csms)
        assert (await csms.call("CP1", call201.Reset(type="Immediate"))).status == "Accepted"
        await wait_until(lambda: agent.reset_requested is False)  # the app would now restart the process
    async with running_agent(config) as agent:
        await registered(csms, 2)
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        await wait_until(lambda: agent.station.busy())
        assert (await csms.call("CP1", call201.Reset(type="OnIdle"))).status == "Scheduled"
        agent.hal.unplug(1)  # the transaction ends: the scheduled reset goes ahead
        await wait_until(lambda: agent.reset_requested is False)
    async with running_agent(config):
        await registered(csms, 3)
    async with running_agent(config):  # the last one stopped on purpose (SIGTERM, a restart)
        await registered(csms, 4)
    assert reasons(csms) == ["PowerUp", "RemoteReset", "ScheduledReset", "LocalReset"]


async def test_boot_after_the_process_was_killed_says_watchdog(tmp_path, csms201):
    path = write_config(tmp_path / "agent", csms201.url, version="2.0.1", station_id="CP1")
    daemon = Daemon(path)
    await daemon.start()
    try:
        await csms201.wait_for_call("BootNotification", timeout=20)
        daemon.kill()  # no controlled stop while the board runs on: what the systemd watchdog does
        await daemon.wait()
        await daemon.start()
        await csms201.wait_for_call("BootNotification", count=2, timeout=20)
    finally:
        await daemon.stop()
    assert reasons(csms201) == ["PowerUp", "Watchdog"]
