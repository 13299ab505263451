"""Storage faults: data_dir (a real tmpfs) fills up while a session charges, again and again, then the real
daemon is stopped with a full disk.

Per version, one in-process agent with 2 EVSEs against the CSMS simulator: EVSE 1 charges with meter values
every second, EVSE 2 waits plugged. Each cycle fills the file system to its last byte, waits for the fault
report (1.6 StatusNotification InternalError on connector 0, 2.0.1 NotifyEvent), taps a card at EVSE 2 (it
must be refused on the display with no contactor closing), lets EVSE 1 charge on with its records held in
memory, frees the space and waits for the fault to clear by itself. Afterwards every transaction record
must have reached the CSMS exactly once and in order, with no sample of the faults missing. Then the
daemon: a session charging, the disk filled, SIGTERM: it must exit 0 with the outputs safe.
"""

from __future__ import annotations

import asyncio

import pytest

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness import agent_config, running_agent, v16, v201, wait_until
from tests.harness.storage import StorageReports, delivery, fault_cycle, fill, tmpfs
from tests.reliability.conftest import full_size
from tests.reliability.daemon import Daemon, write_config

CYCLES = int(full_size("RELIABILITY_STORAGE_CYCLES", 5))


async def cycles_while_charging(tmp_path, version: str) -> tuple[list[dict], dict]:
    """CYCLES full disks during one session of an in-process agent; each cycle's figures and the delivery audit."""
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300))
    await csms.start()
    reports = StorageReports(csms)
    config = agent_config(tmp_path, csms.url, ocpp_version=version, evses=2,
                          configuration={"MeterValueSampleInterval": 1},
                          variables={"SampledDataCtrlr.TxUpdatedInterval": 1})
    try:
        with tmpfs(tmp_path / "data"):
            async with running_agent(config) as agent:
                if version == "1.6":
                    await v16.reach_status(csms, "Available")
                    await v16.charge_session(agent, csms)
                else:
                    await v201.reach_status(csms, "Available")
                    await v201.charge(agent, csms)
                agent.hal.plug(2)
                cycles = []
                for n in range(1, CYCLES + 1):
                    await asyncio.sleep(1.5)  # delivered the ordinary way between faults
                    cycles.append(await fault_cycle(agent, reports, n=n))
                await asyncio.sleep(1.5)
                agent.hal.tap(v16.CARD, evse=1)
                await csms.wait_for(lambda: csms.calls("StopTransaction") or any(
                    c.payload["eventType"] == "Ended" for c in csms.calls("TransactionEvent")), timeout=10)
        return cycles, delivery(csms)
    finally:
        await csms.stop()


async def sigterm_with_a_full_disk(tmp_path, version: str) -> dict:
    """The daemon charging, data_dir filled, SIGTERM: exit status, and whether the log says outputs are safe."""
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300))
    await csms.start()
    config = write_config(tmp_path, csms.url, version=version, configuration={"MeterValueSampleInterval": 1},
                          variables={"SampledDataCtrlr.TxUpdatedInterval": 1})
    reports = StorageReports(csms)
    daemon = Daemon(config)
    try:
        with tmpfs(tmp_path / "data") as data_dir:
            await daemon.start()
            await daemon.wait_control()
            await csms.wait_for(lambda: csms.calls("StatusNotification"), timeout=15)  # registered: cards go online
            for command in ({"cmd": "plug", "evse": 1}, {"cmd": "tap", "id_token": v16.CARD},
                            {"cmd": "ev", "evse": 1, "charge": True}, {"cmd": "power", "evse": 1, "watts": 7200}):
                await daemon.sim(**command)
            charging = await wait_charging(daemon)
            fill(data_dir)
            await wait_until(reports.raised, timeout=15)  # polled: NotifyEvent goes by a hook, not as a recorded CALL
            status = await daemon.stop()
        log = daemon.log_text()
        return {"charging_before": charging, "exit_status": status, "outputs_safe_logged": "outputs are safe" in log,
                "traceback": "Traceback" in log}
    finally:
        if daemon.running:
            daemon.kill()
        await csms.stop()


async def wait_charging(daemon: Daemon, timeout: float = 10.0) -> bool:
    """Whether EVSE 1's contactor closed within ``timeout`` (the session charges)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if (await daemon.sim(cmd="state"))["evses"][0]["contactor_closed"]:
            return True
        await asyncio.sleep(0.2)
    return False


@pytest.mark.reliability
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_storage_faults_full(tmp_path, figures, version):
    cycles, audit = await cycles_while_charging(tmp_path / "agent", version)
    sigterm = await sigterm_with_a_full_disk(tmp_path / "daemon", version)
    figures.record("storage_faults", f"full {version}", version=version, cycles=cycles, **audit, sigterm=sigterm)
    for cycle in cycles:
        assert cycle["start_refused"] and not cycle["refused_tap_closed_contactor"], cycle
        assert cycle["kept_charging"] and cycle["held_after"] == 0, cycle
    assert audit["duplicated"] == 0 and audit["in_order"] and audit["largest_gap_s"] < 1.9, audit
    assert sigterm == {"charging_before": True, "exit_status": 0, "outputs_safe_logged": True,
                       "traceback": False}, sigterm
