"""OCPP 2.1 Reset ImmediateAndResume against the 2.1 test CSMS over a real WebSocket: the agent restarts
(the same data_dir, a second agent process in this loop) and the running transaction goes on with the
same transactionId (Updated, TxResumed, the next seqNo, no Ended) if its cable is still in, or ends
once (EVDisconnected) if it was unplugged during the restart."""

from __future__ import annotations

from datetime import datetime

from ocpp.v21 import call as call21

from agent.app import Agent
from tests.harness import running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, events


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def boot_reasons(csms) -> list[str]:
    return [r.payload["reason"] for r in csms.calls("BootNotification")]


def plug_at_start(monkeypatch, *, charging: bool) -> None:
    """The next agent starts with the cable in (and the EV asking for 7.2 kW if ``charging``), as a real
    pilot would read at once: the mock HAL of a new process starts unplugged."""
    start_hal = Agent._start_hal

    async def plugged(self, data_dir):
        await start_hal(self, data_dir)
        self.hal.plug(1)
        if charging:
            self.hal.ev_charge(1, True)
            self.hal.set_power(1, 7200)

    monkeypatch.setattr(Agent, "_start_hal", plugged)


async def reset_keeping_the_transaction(agent, csms) -> tuple[str, int]:
    """Charge, then Reset ImmediateAndResume: returns the transactionId and the last seqNo sent."""
    await charge(agent, csms)
    result = await csms.call("CP1", call21.Reset(type="ImmediateAndResume"))
    assert result.status == "Accepted"
    await wait_until(lambda: agent.reset_requested is False)  # the app would now restart the process
    started = next(e for e in events(csms) if e["eventType"] == "Started")
    return started["transactionInfo"]["transactionId"], max(e["seqNo"] for e in events(csms))


async def test_v21_reset_immediate_and_resume_keeps_the_transaction_across_the_restart(tmp_path, csms, monkeypatch):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        tx_id, last_seq = await reset_keeping_the_transaction(agent, csms)
    # While the agent is down: no energy, but the driver's cable stays locked in.
    assert not agent.hal.evse(1).contactor.closed and agent.hal.evse(1).lock.locked
    plug_at_start(monkeypatch, charging=True)
    async with running_agent(cfg) as agent:
        await csms.wait_for(lambda: any(e["triggerReason"] == "TxResumed" for e in events(csms)))
        resumed = next(e for e in events(csms) if e["triggerReason"] == "TxResumed")
        assert resumed["eventType"] == "Updated" and resumed["transactionInfo"]["transactionId"] == tx_id
        # The next number after every event sent before it (an Updated event queued just before the reset
        # may go out in either run: last_seq is only what the CSMS had when the reset was answered).
        before = [e["seqNo"] for e in events(csms)[:events(csms).index(resumed)]]
        assert resumed["seqNo"] == max(before) + 1 and max(before) >= last_seq
        assert resumed["transactionInfo"]["chargingState"] == "Charging"
        hw = agent.hal.evse(1)
        await wait_until(lambda: hw.contactor.closed and hw.lock.locked)  # charging goes on
        assert agent.station.transaction_ref(1) == tx_id
        assert not any(e["eventType"] == "Ended" for e in events(csms))
        assert boot_reasons(csms) == ["PowerUp", "RemoteReset"]
        agent.hal.tap(CARD)  # the driver ends it as any other
        await csms.wait_for(lambda: any(e["eventType"] == "Ended" for e in events(csms)))
        await wait_until(lambda: not hw.contactor.closed)
    ended = [e for e in events(csms) if e["eventType"] == "Ended"]
    assert len(ended) == 1 and ended[0]["transactionInfo"]["transactionId"] == tx_id
    assert ended[0]["transactionInfo"]["stoppedReason"] == "Local"
    assert [e["eventType"] for e in events(csms)].count("Started") == 1
    seqs = [e["seqNo"] for e in events(csms)]
    assert seqs == list(range(len(seqs)))  # one numbering across both runs, no gap
    assert csms.schema_errors == []


async def test_v21_reset_immediate_and_resume_ends_a_transaction_unplugged_during_the_restart(tmp_path, csms):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        tx_id, _ = await reset_keeping_the_transaction(agent, csms)
    async with running_agent(cfg) as agent:  # the cable went while the agent was down
        await csms.wait_for(lambda: any(e["eventType"] == "Ended" for e in events(csms)))
        await csms.wait_for_call("StatusNotification", count=2)
        assert agent.station.transaction_ref(1) is None and not agent.hal.evse(1).contactor.closed
    ended = [e for e in events(csms) if e["eventType"] == "Ended"]
    assert len(ended) == 1 and ended[0]["transactionInfo"]["transactionId"] == tx_id
    assert ended[0]["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert not any(e["triggerReason"] == "TxResumed" for e in events(csms))
    assert boot_reasons(csms) == ["PowerUp", "RemoteReset"]
    assert csms.schema_errors == []


async def test_v21_an_immediate_reset_still_ends_the_transaction_with_the_cable_in(tmp_path, csms, monkeypatch):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        await charge(agent, csms)
        assert (await csms.call("CP1", call21.Reset(type="Immediate"))).status == "Accepted"
        await wait_until(lambda: agent.reset_requested is False)
    assert not agent.hal.evse(1).lock.locked  # (ended: the cable is released as on any stop)
    plug_at_start(monkeypatch, charging=True)
    async with running_agent(cfg) as agent:  # no marker: nothing is resumed, whatever the cable
        await csms.wait_for_call("BootNotification", count=2)
        assert agent.station.transaction_ref(1) is None and not agent.hal.evse(1).contactor.closed
    assert [e["eventType"] for e in events(csms)].count("Ended") == 1
    assert not any(e["triggerReason"] == "TxResumed" for e in events(csms))


async def test_v21_a_time_limit_still_ends_the_transaction_resumed_after_the_restart(tmp_path, csms, monkeypatch):
    csms.behaviour.transaction_limit = {"max_time": 3}  # set in the answer to Started only: not again after
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        tx_id, _ = await reset_keeping_the_transaction(agent, csms)
    plug_at_start(monkeypatch, charging=True)
    async with running_agent(cfg) as agent:
        ended = await csms.wait_for(lambda: next((e for e in events(csms) if e["eventType"] == "Ended"), None),
                                    timeout=8.0)
        assert any(e["triggerReason"] == "TxResumed" for e in events(csms))
        await wait_until(lambda: agent.core.store.get("limits.tx." + tx_id) is None)  # kept while it ran only
    started = next(e for e in events(csms) if e["eventType"] == "Started")
    info = ended["transactionInfo"]
    assert info["transactionId"] == tx_id and info["stoppedReason"] == "TimeLimitReached"
    assert info["transactionLimit"] == {"maxTime": 3}
    lasted = seconds(ended["timestamp"]) - seconds(started["timestamp"])
    assert 3 - 0.1 <= lasted < 6  # counted from the transaction's start, not from the restart
    assert csms.schema_errors == []
