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
import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.harness import agent_config, running_agent, wait_until
from tests.harness import v16, v201

TMPFS_SIZE = "8m"  # room for the agent's files; the filler takes the rest
OTHER_CARD = "0A0B0C0D"
REFUSED_TEXT = "Storage fault: cannot start"
FAULT_CODE = "storage-failure"


@contextlib.contextmanager
def tmpfs(path: Path):
    """A fresh tmpfs of TMPFS_SIZE mounted at ``path`` (skip the test if this machine does not allow it)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0750", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a full data_dir needs a tmpfs mounted by the test (root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to its last byte with one file; returns that file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY, 0o600)
    chunk = 1 << 20
    try:
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2  # the last blocks too
    finally:
        os.close(fd)
    return filler


def capture_notify_events(csms) -> list[dict]:
    """Answer NotifyEvent (the simulator has no handler for it) and keep every payload."""
    received: list[dict] = []

    def hook(station_id, text):
        frame = json.loads(text)
        if frame[0] == 2 and frame[2] == "NotifyEvent":
            received.append(frame[3])
            return json.dumps([3, frame[1], {}])
        return None

    csms.behaviour.frame_hook = hook
    return received


def storage_events(notify_events: list[dict], *, cleared: bool) -> list[dict]:
    """The storage fault's NotifyEvent items, raised (or cleared)."""
    return [d for event in notify_events for d in event["eventData"]
            if d.get("techCode") == FAULT_CODE and bool(d.get("cleared")) == cleared]


def station_error16(csms) -> str | None:
    """The errorCode of the last 1.6 StatusNotification of connector 0 (the charge point itself)."""
    found = [r.payload["errorCode"] for r in csms.calls("StatusNotification") if r.payload["connectorId"] == 0]
    return found[-1] if found else None


def closed_contactor(agent, evse: int, *, since: float) -> bool:
    """Whether EVSE ``evse``'s contactor was commanded closed after monotonic ``since``."""
    return any(t >= since and device == f"evse{evse}.contactor" and value is True
               for t, device, value in agent.hal.history)


def shown(agent, text: str, *, since: float) -> bool:
    """Whether the display showed ``text`` after monotonic ``since``."""
    return any(t >= since and device == "display" and value == text for t, device, value in agent.hal.history)


def meter_timestamps16(csms) -> list[str]:
    """The timestamp of every MeterValues the 1.6 CSMS received (one sample each), in arrival order."""
    return [r.payload["meterValue"][0]["timestamp"] for r in csms.calls("MeterValues")]


async def storage_fault_while_charging(agent, csms, *, reported, cleared):
    """Fill data_dir while EVSE 1 charges and EVSE 2 waits plugged; check what happens; free the space.

    Returns the monotonic times (filled, freed).
    """
    data_dir = Path(agent.config.station.data_dir)
    agent.hal.plug(2)
    await asyncio.sleep(1.5)  # a few samples delivered the ordinary way first
    filled = time.monotonic()
    filler = fill(data_dir)
    await wait_until(reported, timeout=10)  # the first refused write raises it; its report needs no disk
    assert agent.station.journal.can_begin() is False

    tapped = time.monotonic()
    agent.hal.tap(OTHER_CARD, evse=2)
    await wait_until(lambda: shown(agent, REFUSED_TEXT, since=tapped), timeout=5)
    await asyncio.sleep(2.5)  # EVSE 1 charges on; its samples are held in memory
    assert not closed_contactor(agent, 2, since=tapped)
    assert agent.hal.evse(1).contactor.closed and agent.hal.evse(1).contactor.feedback_closed
    assert agent.station.journal.held > 0

    filler.unlink()
    freed = time.monotonic()
    await wait_until(cleared, timeout=10)  # the retry wrote what was held: the fault cleared by itself
    assert agent.station.journal.held == 0
    return filled, freed


@pytest.fixture
def data_dir(tmp_path):
    """data_dir of the in-process agents (agent_config puts it at tmp_path/data) on its own tmpfs."""
    with tmpfs(tmp_path / "data") as mounted:
        yield mounted


async def test_storage_16_full_data_dir_reported_refuses_taps_keeps_charging_and_delivers_once(
        tmp_path, data_dir, csms16):
    config = agent_config(tmp_path, csms16.url, evses=2, configuration={"MeterValueSampleInterval": 1})
    async with running_agent(config) as agent:
        await v16.reach_status(csms16, "Available")
        await v16.charge_session(agent, csms16)
        await storage_fault_while_charging(
            agent, csms16, reported=lambda: station_error16(csms16) == "InternalError",
            cleared=lambda: station_error16(csms16) == "NoError")
        await asyncio.sleep(1.5)  # delivered again the ordinary way
        agent.hal.tap(v16.CARD, evse=1)
        (stop,) = await csms16.wait_for_call("StopTransaction", timeout=10)
    [fault] = [r.payload for r in csms16.calls("StatusNotification")
               if r.payload["connectorId"] == 0 and r.payload["errorCode"] == "InternalError"]
    assert fault["info"] == FAULT_CODE
    assert [r.payload["connectorId"] for r in csms16.calls("StartTransaction")] == [1]  # none on EVSE 2
    [(tx_id, tx)] = csms16.transactions.items()
    assert tx["starts"] == 1 and len(tx["stops"]) == 1 and stop.payload["transactionId"] == tx_id
    stamps = meter_timestamps16(csms16)
    assert len(stamps) == len(set(stamps)) and stamps == sorted(stamps)  # once each, in order
    gaps = [b - a for a, b in zip(_seconds(stamps), _seconds(stamps)[1:])]
    assert max(gaps) < 1.9, gaps  # no sample of the fault is missing: one a second throughout


async def test_storage_201_full_data_dir_reported_refuses_taps_keeps_charging_and_delivers_once(
        tmp_path, data_dir, csms201):
    notify_events = capture_notify_events(csms201)
    config = agent_config(tmp_path, csms201.url, ocpp_version="2.0.1", evses=2,
                          variables={"SampledDataCtrlr.TxUpdatedInterval": 1})
    async with running_agent(config) as agent:
        await v201.reach_status(csms201, "Available")
        await v201.charge(agent, csms201)
        await storage_fault_while_charging(
            agent, csms201, reported=lambda: storage_events(notify_events, cleared=False),
            cleared=lambda: storage_events(notify_events, cleared=True))
        agent.hal.tap(v201.CARD, evse=1)
        await csms201.wait_for(lambda: any(e["eventType"] == "Ended" for e in v201.events(csms201)), timeout=10)
    [raised] = storage_events(notify_events, cleared=False)
    assert raised["component"] == {"name": "ChargingStation"} and raised["actualValue"] == "true"
    events = v201.events(csms201)
    assert {e["evse"]["id"] for e in events if e["eventType"] == "Started"} == {1}  # none on EVSE 2
    [tx] = csms201.transactions.values()
    assert tx["resent"] == 0  # exactly once
    seq_nos = [e["seqNo"] for e in events]
    assert seq_nos == list(range(len(seq_nos)))  # in order, none missing
    updates = [_iso_seconds(e["timestamp"]) for e in events if e["eventType"] == "Updated"]
    assert max(b - a for a, b in zip(updates, updates[1:])) < 1.9  # the held samples are there


def _seconds(stamps: list[str]) -> list[float]:
    return [_iso_seconds(s) for s in stamps]


def _iso_seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


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
        await csms16.wait_for(lambda: station_error16(csms16) == "InternalError", timeout=15)
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
