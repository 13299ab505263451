"""2.1 transaction limits against the test CSMS over a real WebSocket: the CSMS answers TransactionEvent
Started with a transactionLimit, and the station ends the transaction by itself when it is reached
(maxEnergy from the meter's readings, maxTime by a timer), saying the limit in transactionInfo.
maxCost (no local cost calculation yet) and maxSoC (needs ISO 15118) are echoed, never enforced."""

from __future__ import annotations

import asyncio
from datetime import datetime

from tests.harness import running_agent, wait_until
from tests.harness.v201 import charge, config, events


def _ended(csms):
    return next((e for e in events(csms) if e["eventType"] == "Ended"), None)


def _at(event) -> float:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


async def test_v21_max_energy_reached_ends_the_transaction_with_energy_limit_reached(tmp_path, csms):
    csms.behaviour.transaction_limit = {"max_energy": 3.0}  # 7.2 kW: about 2 Wh a second
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        ref = agent.station.evse(1).transaction_ref
        ended = await csms.wait_for(lambda: _ended(csms), timeout=8.0)
        info = ended["transactionInfo"]
        assert info["stoppedReason"] == "EnergyLimitReached" and ended["triggerReason"] == "EnergyLimitReached"
        assert info["transactionLimit"] == {"maxEnergy": 3.0}
        tx = agent.core.journal.get(ref)
        assert tx.meter_stop_Wh - tx.meter_start_Wh >= 3.0  # never before the limit
        assert not agent.hal.evse(1).contactor.closed
        updated = [e for e in events(csms) if e["eventType"] == "Updated"]
        assert any(e["transactionInfo"].get("transactionLimit") == {"maxEnergy": 3.0} for e in updated)
        assert csms.schema_errors == []


async def test_v21_max_time_reached_ends_it_with_time_limit_reached_and_cost_and_soc_are_echoed(tmp_path, csms):
    limit = {"max_time": 2, "max_cost": 5.0, "max_soc": 80}
    csms.behaviour.transaction_limit = limit
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        agent.hal.set_power(1, 0)  # no energy limit in play: only the time ends it
        ended = await csms.wait_for(lambda: _ended(csms), timeout=8.0)
        started = next(e for e in events(csms) if e["eventType"] == "Started")
        info = ended["transactionInfo"]
        assert info["stoppedReason"] == "TimeLimitReached" and ended["triggerReason"] == "TimeLimitReached"
        assert info["transactionLimit"] == {"maxTime": 2, "maxCost": 5.0, "maxSoC": 80}
        assert 2.0 - 0.1 <= _at(ended) - _at(started) < 4.0
        assert not agent.hal.evse(1).contactor.closed
        assert csms.schema_errors == []


async def test_v21_a_limit_not_reached_leaves_the_transaction_running(tmp_path, csms):
    csms.behaviour.transaction_limit = {"max_energy": 100000.0, "max_time": 3600, "max_soc": 80}
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        await wait_until(lambda: any(e["transactionInfo"].get("transactionLimit") for e in events(csms)
                                     if e["eventType"] == "Updated"))
        await asyncio.sleep(1.0)
        assert agent.station.busy(1) and agent.hal.evse(1).contactor.closed and _ended(csms) is None
        assert csms.schema_errors == []
