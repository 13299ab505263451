"""OCPP 2.0.1 Reset of the whole station (B11/B12): OnIdle waits for the last transaction to end, then
the agent restarts at once; Immediate ends transactions first."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v201 import call as call201

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness import agent_config, running_agent, wait_until

CARD = "04A1B2C3"


@pytest.fixture
async def simulator():
    """A 2.0.1 CSMS simulator that stays quiet (no heartbeats during the test)."""
    sim = CsmsSimulator(ocpp_version="2.0.1", behaviour=CsmsBehaviour(heartbeat_interval=300))
    await sim.start()
    yield sim
    await sim.stop()


def ended(simulator) -> list[dict]:
    """The TransactionEvent Ended payloads the CSMS received."""
    return [r.payload for r in simulator.calls("TransactionEvent") if r.payload["eventType"] == "Ended"]


async def start_session(agent, simulator, evse: int) -> None:
    """Plug, tap the card at the EVSE, the EV asks for energy: returns once the contactor closed."""
    agent.hal.plug(evse)
    agent.hal.tap(CARD, evse)
    agent.hal.ev_charge(evse, True)
    await wait_until(lambda: agent.hal.evse(evse).contactor.closed)


async def test_reset_on_idle_restarts_once_the_last_transaction_ended(tmp_path, simulator):
    config = agent_config(tmp_path, simulator.url, ocpp_version="2.0.1", evses=2)
    async with running_agent(config) as agent:
        await simulator.wait_for_call("StatusNotification", count=2)
        await start_session(agent, simulator, 1)
        await start_session(agent, simulator, 2)
        result = await simulator.call("CP1", call201.Reset(type="OnIdle"))
        assert result.status == "Scheduled"
        agent.hal.tap(CARD, 1)
        await wait_until(lambda: len(ended(simulator)) == 1)
        await asyncio.sleep(0.3)
        assert agent.reset_requested is None and agent.hal.evse(2).contactor.closed  # EVSE 2 charges on
        agent.hal.tap(CARD, 2)
        # The restart follows the end of the last transaction at once (no polling interval in between).
        await wait_until(lambda: agent.reset_requested is not None, timeout=0.5, interval=0.01)
        assert agent.reset_requested is False  # a restart of the agent, not a reboot of the board
        await wait_until(lambda: len(ended(simulator)) == 2)
        assert [e["transactionInfo"]["stoppedReason"] for e in ended(simulator)] == ["Local", "Local"]


async def test_reset_on_idle_when_idle_is_accepted_and_restarts_at_once(tmp_path, simulator):
    async with running_agent(agent_config(tmp_path, simulator.url, ocpp_version="2.0.1")) as agent:
        await simulator.wait_for_call("StatusNotification")
        result = await simulator.call("CP1", call201.Reset(type="OnIdle"))
        assert result.status == "Accepted"
        await wait_until(lambda: agent.reset_requested is not None, timeout=0.5, interval=0.01)
        assert agent.reset_requested is False


async def test_reset_immediate_ends_the_transaction_first(tmp_path, simulator):
    async with running_agent(agent_config(tmp_path, simulator.url, ocpp_version="2.0.1")) as agent:
        await simulator.wait_for_call("StatusNotification")
        await start_session(agent, simulator, 1)
        result = await simulator.call("CP1", call201.Reset(type="Immediate"))
        assert result.status == "Accepted"
        await wait_until(lambda: agent.reset_requested is not None)
        assert agent.reset_requested is False and not agent.hal.evse(1).contactor.closed
        await wait_until(lambda: ended(simulator))
        assert ended(simulator)[0]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
