"""Power cuts: SIGKILL the agent at random points of sessions; every transaction is started and
stopped exactly once at the CSMS, with meterStop >= meterStart and never a placeholder id."""

import asyncio
import os
import random
import signal
import sys
import textwrap

import pytest

from agent.csms_sim import CsmsBehaviour, CsmsSimulator
from hal.mock_client import request

RUNS = int(os.environ.get("CRASH_RUNS", "20"))


def write_config(tmp_path, url):
    path = tmp_path / "agent.toml"
    path.write_text(textwrap.dedent(f"""
        [station]
        id = "CP-CRASH"
        data_dir = "{tmp_path / 'data'}"
        [csms]
        url = "{url}"
        [[evse]]
        id = 1
        [hal]
        backend = "mock"
        [ocpp16.configuration]
        MeterValueSampleInterval = 1
        [ocpp201.variables]
        "OCPPCommCtrlr.RetryBackOffWaitMinimum" = 1
        "OCPPCommCtrlr.RetryBackOffRandomRange" = 0
        """))
    return path


async def sim(socket_path, **command):
    return await asyncio.to_thread(request, socket_path, command, timeout=5.0)


async def one_crash(config_path, socket_path, csms, rng):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "run", "--config", str(config_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        boots = len(csms.calls("BootNotification"))
        await csms.wait_for_call("BootNotification", count=boots + 1, timeout=15)
        await asyncio.sleep(rng.uniform(0.05, 0.4))  # registration and outbox replay in flight
        await sim(socket_path, cmd="unplug", evse=1)
        await sim(socket_path, cmd="plug", evse=1)
        await sim(socket_path, cmd="tap", id_token=f"CARD{rng.randrange(3)}")
        await sim(socket_path, cmd="ev", evse=1, charge=True)
        await sim(socket_path, cmd="power", evse=1, watts=rng.choice([3700, 7400, 11000]))
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        if rng.random() < 0.4:  # sometimes the session ends normally before the cut
            await sim(socket_path, cmd="unplug", evse=1)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
    except (ConnectionError, OSError, asyncio.TimeoutError):
        pass  # the control socket may not be up yet: the cut comes anyway
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()


async def test_crash_recovery_sigkill_at_random_points(tmp_path):
    csms = CsmsSimulator(behaviour=CsmsBehaviour(heartbeat_interval=300, authorize_status="Accepted"))
    await csms.start()
    config_path = write_config(tmp_path, csms.url)
    socket_path = str(tmp_path / "data" / "mock-hal.sock")
    rng = random.Random(int(os.environ.get("CRASH_SEED", "1")))
    try:
        for _ in range(RUNS):
            await one_crash(config_path, socket_path, csms, rng)
        # A last, clean run: the agent ends what the last cut left open and drains its outbox.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "run", "--config", str(config_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await csms.wait_for(lambda: csms.transactions and all(t["stops"] for t in csms.transactions.values()),
                            timeout=20)
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        await csms.stop()
    transactions = csms.transactions
    assert len(transactions) >= RUNS // 3, "the runs must have produced transactions"
    for tx_id, tx in transactions.items():
        assert tx["starts"] >= 1, f"transaction {tx_id} stopped but never started"
        # A cut between the CSMS's answer and our commit resends the same StopTransaction
        # (at-least-once delivery); a second, different stop would be a double-ended transaction.
        distinct = {tuple(sorted(stop.items())) for stop in tx["stops"]}
        assert len(distinct) == 1, f"transaction {tx_id} stopped differently: {tx['stops']}"
        assert tx["stops"][0]["meter_stop"] >= tx["meter_start"]
    for call in csms.calls("StopTransaction") + csms.calls("MeterValues"):
        assert call.payload.get("transactionId", 1) in transactions  # never -1 or a local id
    starts = sum(tx["starts"] - 1 for tx in transactions.values())
    stops = sum(len(tx["stops"]) - 1 for tx in transactions.values())
    print(f"\n{RUNS} power cuts: {len(transactions)} transactions, each started and stopped once at the CSMS; "
          f"retransmitted after a cut: {starts} StartTransaction, {stops} StopTransaction (identical content)")


@pytest.mark.slow
async def test_crash_recovery_many_power_cuts(tmp_path, monkeypatch):
    global RUNS
    monkeypatch.setattr(sys.modules[__name__], "RUNS", 100)
    await test_crash_recovery_sigkill_at_random_points(tmp_path)
