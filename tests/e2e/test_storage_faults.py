"""Storage supervision end to end, on a REAL full file system: data_dir is a small tmpfs the test mounts
(root needed: skipped with the reason otherwise) and fills with a file while the agent runs.

In-process agents on the mock HAL against the CSMS simulator, both OCPP versions: the fault reaches the
CSMS although nothing can be written (1.6 StatusNotification InternalError on connector 0, 2.0.1
NotifyEvent), a card is refused (display text, no contactor closes), the running transaction keeps
charging; once the filler is deleted the fault clears by itself and every transaction record, those
held in memory during the fault included, reaches the CSMS exactly once and in order. Then the real
daemon: SIGTERM with a full data_dir exits 0 with the outputs safe.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.harness import agent_config, running_agent
from tests.harness import v16, v201
from tests.harness.storage import FAULT_CODE, StorageReports, delivery, fault_cycle, fill, tmpfs


@pytest.fixture
def data_dir(tmp_path):
    """data_dir of the agents (agent_config puts it at tmp_path/data) on a tmpfs of its own."""
    with tmpfs(tmp_path / "data") as mounted:
        yield mounted


def assert_fault_handled(cycle: dict) -> None:
    """One full disk while charging: refused start, charging kept, what was held written once freed."""
    assert cycle["start_refused"] and not cycle["refused_tap_closed_contactor"], cycle
    assert cycle["kept_charging"] and cycle["held"] > 0 and cycle["held_after"] == 0, cycle


def assert_delivered_once_in_order(csms) -> None:
    audit = delivery(csms)
    assert audit["duplicated"] == 0 and audit["in_order"], audit
    assert audit["largest_gap_s"] < 1.9, audit  # the samples of the fault are there: one a second throughout


async def test_storage_16_full_data_dir_reported_refuses_taps_keeps_charging_and_delivers_once(
        tmp_path, data_dir, csms16):
    reports = StorageReports(csms16)
    config = agent_config(tmp_path, csms16.url, evses=2, configuration={"MeterValueSampleInterval": 1})
    async with running_agent(config) as agent:
        await v16.reach_status(csms16, "Available")
        await v16.charge_session(agent, csms16)
        agent.hal.plug(2)
        await asyncio.sleep(1.5)  # a few samples delivered the ordinary way first
        assert_fault_handled(await fault_cycle(agent, reports))
        await asyncio.sleep(1.5)  # delivered the ordinary way again
        agent.hal.tap(v16.CARD, evse=1)
        await csms16.wait_for_call("StopTransaction", timeout=10)
    [fault] = [r.payload for r in csms16.calls("StatusNotification")
               if r.payload["connectorId"] == 0 and r.payload["errorCode"] == "InternalError"]
    assert fault["info"] == FAULT_CODE
    assert [r.payload["connectorId"] for r in csms16.calls("StartTransaction")] == [1]  # none on EVSE 2
    assert_delivered_once_in_order(csms16)


async def test_storage_201_full_data_dir_reported_refuses_taps_keeps_charging_and_delivers_once(
        tmp_path, data_dir, csms201):
    reports = StorageReports(csms201)
    config = agent_config(tmp_path, csms201.url, ocpp_version="2.0.1", evses=2,
                          variables={"SampledDataCtrlr.TxUpdatedInterval": 1})
    async with running_agent(config) as agent:
        await v201.reach_status(csms201, "Available")
        await v201.charge(agent, csms201)
        agent.hal.plug(2)
        await asyncio.sleep(1.5)
        assert_fault_handled(await fault_cycle(agent, reports))
        agent.hal.tap(v201.CARD, evse=1)
        await csms201.wait_for(lambda: any(e["eventType"] == "Ended" for e in v201.events(csms201)), timeout=10)
    [raised] = reports.events(cleared=False)
    assert raised["component"] == {"name": "ChargingStation"} and raised["actualValue"] == "true"
    assert {e["evse"]["id"] for e in v201.events(csms201) if e["eventType"] == "Started"} == {1}  # none on EVSE 2
    assert_delivered_once_in_order(csms201)


# ------------------------------------------------------------------ the daemon


DAEMON_CONFIG = """
[station]
id = "CP-DISK"
data_dir = "{data_dir}"
[csms]
url = "{url}"
[[evse]]
id = 1
[hal]
backend = "mock"
[ocpp16.configuration]
MeterValueSampleInterval = 1
"""


async def sim(config: Path, *args: str) -> dict:
    """``ocpp-agent sim`` against the running daemon; its JSON answer."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "sim", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_storage_daemon_sigterm_with_a_full_data_dir_exits_0_with_outputs_safe(tmp_path, data_dir, csms16):
    config = tmp_path / "agent.toml"
    config.write_text(textwrap.dedent(DAEMON_CONFIG.format(data_dir=data_dir, url=csms16.url)))
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "run", "--config", str(config), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await v16.reach_status(csms16, "Available", timeout=15)
        await sim(config, "plug", "1")
        await sim(config, "tap", v16.CARD)
        await csms16.wait_for_call("StartTransaction", timeout=10)
        await sim(config, "ev", "1", "charge")
        await wait_for_state(config, lambda evse: evse["contactor_closed"])
        fill(data_dir)
        await csms16.wait_for(lambda: StorageReports(csms16).raised(), timeout=15)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await process.stderr.read()).decode()
    assert "outputs are safe" in stderr and "Traceback" not in stderr, stderr[-3000:]


async def wait_for_state(config: Path, predicate, *, timeout: float = 10.0) -> None:
    """Poll ``sim state`` until ``predicate(evse 1)`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate((await sim(config, "state"))["evses"][0]):
        assert time.monotonic() < deadline, "EVSE 1 did not reach the state in time"
        await asyncio.sleep(0.2)
