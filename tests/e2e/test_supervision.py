"""Supervision end to end: the station notices what happens to its hardware, not only what it does.

An in-process agent on the mock HAL against the CSMS simulator, on both OCPP versions:
a connector lock that lets go while charging is found by feedback supervision (not at the
next lock command), made safe (0 A, contactor open) and reported within 1 s; a meter that
dies while nobody charges is reported within 3 poll intervals and clears by itself.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness import agent_config, running_agent, wait_until
from tests.harness import v16, v201

SUPERVISION_BOUND_S = 1.0
POLL_INTERVAL_S = 1.0  # the default [evse.meter] poll_interval_s


def capture_notify_events(csms) -> list[dict]:
    """Answer NotifyEvent (the simulator has no handler for it) and keep every payload.

    They are not among ``csms.calls``, so wait for them with ``wait_until``, not ``csms.wait_for``.
    """
    received: list[dict] = []

    def hook(station_id, text):
        frame = json.loads(text)
        if frame[0] == 2 and frame[2] == "NotifyEvent":
            received.append(frame[3])
            return json.dumps([3, frame[1], {}])
        return None

    csms.behaviour.frame_hook = hook
    return received


def techcodes(notify_events: list[dict], *, cleared: bool) -> list[str]:
    """techCode of every NotifyEvent item raised (or cleared), oldest first."""
    return [d.get("techCode") for event in notify_events for d in event["eventData"]
            if bool(d.get("cleared")) == cleared]


def status16(csms, connector=1) -> tuple[str, str] | None:
    """(status, errorCode) of the last StatusNotification for ``connector``."""
    found = [(r.payload["status"], r.payload["errorCode"]) for r in csms.calls("StatusNotification")
             if r.payload["connectorId"] == connector]
    return found[-1] if found else None


def made_safe_at(agent, since: float) -> float | None:
    """Monotonic time EVSE 1 had its offer at 0 A and its contactor commanded open, after ``since``."""
    offer = [t for t, device, value in agent.hal.history
             if t >= since and device == "evse1.current_limit_A" and value == 0]
    opened = [t for t, device, value in agent.hal.history
              if t >= since and device == "evse1.contactor" and value is False]
    return max(offer[0], opened[0]) if offer and opened else None


async def lock_lets_go(agent) -> float:
    """The lock of a charging EVSE 1 lets go; returns the monotonic time it did."""
    hw = agent.hal.evse(1)
    assert hw.contactor.closed and hw.contactor.feedback_closed and hw.lock.locked
    let_go = time.monotonic()
    agent.hal.inject_fault(1, "lock-failure")
    assert not hw.lock.locked  # its switch reads unlocked, as a failed lock's would
    return let_go


async def test_supervision_16_lock_letting_go_while_charging_is_safe_and_reported_within_1s(tmp_path, csms16):
    async with running_agent(agent_config(tmp_path, csms16.url)) as agent:
        await v16.reach_status(csms16, "Available")
        await v16.charge_session(agent, csms16)
        let_go = await lock_lets_go(agent)
        await csms16.wait_for(lambda: status16(csms16) == ("Faulted", "ConnectorLockFailure"),
                              timeout=SUPERVISION_BOUND_S)
        reported = time.monotonic() - let_go
        await wait_until(lambda: made_safe_at(agent, let_go), timeout=SUPERVISION_BOUND_S)
        safe = made_safe_at(agent, let_go) - let_go
        stop = (await csms16.wait_for_call("StopTransaction"))[0].payload
    assert reported <= SUPERVISION_BOUND_S and safe <= SUPERVISION_BOUND_S, (reported, safe)
    assert stop["reason"] == "Other"  # 1.6 has no reason of its own for a hardware fault


async def test_supervision_201_lock_letting_go_while_charging_is_safe_and_reported_within_1s(tmp_path, csms201):
    notify_events = capture_notify_events(csms201)
    async with running_agent(v201.config(tmp_path, csms201)) as agent:
        await v201.reach_status(csms201, "Available")
        await v201.charge(agent, csms201)
        let_go = await lock_lets_go(agent)
        # Faulted, then (the session ended, the cable released: the lock agrees again) Occupied.
        await wait_until(lambda: "Faulted" in v201.statuses(csms201)
                         and "lock-failure" in techcodes(notify_events, cleared=False),
                         timeout=SUPERVISION_BOUND_S, interval=0.005)
        reported = time.monotonic() - let_go
        await wait_until(lambda: made_safe_at(agent, let_go), timeout=SUPERVISION_BOUND_S)
        safe = made_safe_at(agent, let_go) - let_go
        await csms201.wait_for(lambda: any(e["eventType"] == "Ended" for e in v201.events(csms201)))
    assert reported <= SUPERVISION_BOUND_S and safe <= SUPERVISION_BOUND_S, (reported, safe)
    [problem] = [d for event in notify_events for d in event["eventData"]
                 if d.get("techCode") == "lock-failure" and not d.get("cleared")]
    assert problem["component"] == {"name": "EVSE", "evse": {"id": 1}} and problem["actualValue"] == "true"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_supervision_dead_meter_while_idle_reported_and_clears_by_itself(tmp_path, csms_factory, version):
    csms = await csms_factory(version)
    notify_events = capture_notify_events(csms)
    config = (agent_config(tmp_path, csms.url) if version == "1.6" else v201.config(tmp_path, csms))
    bound = 3 * POLL_INTERVAL_S + SUPERVISION_BOUND_S  # three poll intervals, and the report's way out

    def reported(*, cleared: bool) -> bool:
        if version == "1.6":
            # Faulted while down: no session can start there (tests/e2e/test_meter_supervision.py).
            return status16(csms) == (("Available", "NoError") if cleared else ("Faulted", "PowerMeterFailure"))
        return "meter-offline" in techcodes(notify_events, cleared=cleared)

    async with running_agent(config) as agent:
        await csms.wait_for(lambda: csms.calls("StatusNotification"))
        await agent_idle(agent)
        died = time.monotonic()
        agent.hal.inject_fault(1, "meter-offline")  # no transaction, no sampling: only the poller reads it
        # Polled: the simulator wakes its waiters on recorded CALLs only, and NotifyEvent goes by the hook.
        await wait_until(lambda: reported(cleared=False), timeout=bound + 1, interval=0.005)
        noticed = time.monotonic() - died
        agent.hal.clear_fault(1, "meter-offline")
        await wait_until(lambda: reported(cleared=True), timeout=2 * POLL_INTERVAL_S + 1)
    assert noticed <= bound, noticed


async def agent_idle(agent) -> None:
    """Wait until EVSE 1's meter has published a reading: the station is up and idle."""
    await wait_until(lambda: agent.hal.evse(1).meter.latest is not None, timeout=3 * POLL_INTERVAL_S)
