"""2.1 transaction limits against the test CSMS over a real WebSocket: the CSMS answers TransactionEvent
Started with a transactionLimit, and the station ends the transaction by itself when it is reached
(maxEnergy from the meter's readings, maxTime by a timer, maxCost by the station's own cost of the
session), saying the limit in transactionInfo. maxSoC (needs ISO 15118) is echoed, never enforced; maxCost
without a tariff is echoed too (nothing prices the session, so it never costs anything)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal

from ocpp.v21 import call as call21

from tests.harness import running_agent, wait_until
from tests.harness.v201 import charge, config, events, reach_status


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


async def test_v21_max_cost_reached_ends_the_transaction_with_cost_limit_reached(tmp_path, csms):
    csms.behaviour.transaction_limit = {"max_cost": 0.5}
    dear = {"tariff_id": "C1", "currency": "EUR", "energy": {"prices": [{"price_kwh": 100}]}}  # ~0.2 EUR a second
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        assert (await csms.call("CP1", call21.SetDefaultTariff(evse_id=0, tariff=dear))).status == "Accepted"
        await charge(agent, csms)
        ended = await csms.wait_for(lambda: _ended(csms), timeout=8.0)
        info = ended["transactionInfo"]
        # 2.1's ReasonEnumType has no cost reason: the trigger says it, the stoppedReason is Other.
        assert ended["triggerReason"] == "CostLimitReached" and info["stoppedReason"] == "Other"
        assert info["transactionLimit"] == {"maxCost": 0.5}
        assert agent.core.store.get("limits.tx." + info["transactionId"]) is None  # persisted while it ran only
        total = Decimal(str(ended["costDetails"]["totalCost"]["total"]["exclTax"]))
        assert Decimal("0.5") <= total < Decimal("1.0")  # stopped at the reading that reached it
        assert not agent.hal.evse(1).contactor.closed
        assert csms.schema_errors == []
