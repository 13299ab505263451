"""Power cuts: SIGKILL the agent at random points of sessions, on OCPP 1.6 and 2.0.1: every
transaction is started and ended exactly once at the CSMS, never with a placeholder id, and
2.0.1 seqNos run without gaps."""

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


def write_config(tmp_path, url, version="1.6"):
    path = tmp_path / "agent.toml"
    path.write_text(textwrap.dedent(f"""
        [station]
        id = "CP-CRASH"
        data_dir = "{tmp_path / 'data'}"
        [csms]
        url = "{url}"
        ocpp_version = "{version}"
        [[evse]]
        id = 1
        [hal]
        backend = "mock"
        [ocpp201.variables]
        "SampledDataCtrlr.TxUpdatedInterval" = 1
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


async def crash_campaign(tmp_path, version: str, runs: int) -> None:
    """``runs`` power cuts on one version, a clean last run, then the exactly-once checks."""
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300))
    await csms.start()
    config_path = write_config(tmp_path, csms.url, version)
    socket_path = str(tmp_path / "data" / "mock-hal.sock")
    rng = random.Random(int(os.environ.get("CRASH_SEED", "1")))
    try:
        for _ in range(runs):
            await one_crash(config_path, socket_path, csms, rng)
        # A last, clean run: the agent ends what the last cut left open and drains its outbox.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "run", "--config", str(config_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            done = _all_ended_16 if version == "1.6" else _all_ended_201
            await csms.wait_for(lambda: csms.transactions and done(csms.transactions), timeout=20)
            await asyncio.sleep(0.5)
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        await csms.stop()
    assert len(csms.transactions) >= runs // 3, "the runs must have produced transactions"
    (_check_16 if version == "1.6" else _check_201)(csms, runs)


async def test_crash_recovery_sigkill_at_random_points(tmp_path):
    # Both versions at once: the runs mostly wait on sockets and timers, so they share the cores well.
    (tmp_path / "v16").mkdir()
    (tmp_path / "v201").mkdir()
    await asyncio.gather(crash_campaign(tmp_path / "v16", "1.6", RUNS),
                         crash_campaign(tmp_path / "v201", "2.0.1", RUNS))


def _all_ended_16(transactions) -> bool:
    return all(t["stops"] for t in transactions.values())


def _all_ended_201(transactions) -> bool:
    return all(any(e["event_type"] == "Ended" for e in t["events"].values()) for t in transactions.values())


def _check_16(csms, runs: int) -> None:
    transactions = csms.transactions
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
    print(f"\n1.6, {runs} power cuts: {len(transactions)} transactions, each started and stopped once at the CSMS; "
          f"retransmitted after a cut: {starts} StartTransaction, {stops} StopTransaction (identical content)")


def _check_201(csms, runs: int) -> None:
    for tx_id, tx in csms.transactions.items():
        seq = sorted(tx["events"])
        assert seq == list(range(len(seq))), f"transaction {tx_id}: seqNo gaps {seq}"
        kinds = [tx["events"][n]["event_type"] for n in seq]
        assert kinds[0] == "Started" and kinds.count("Started") == 1, kinds
        assert kinds[-1] == "Ended" and kinds.count("Ended") == 1, kinds
    resent = sum(tx["resent"] for tx in csms.transactions.values())
    print(f"\n2.0.1, {runs} power cuts: {len(csms.transactions)} transactions, each Started and Ended once, "
          f"seqNo without gaps; {resent} TransactionEvent retransmissions (same seqNo)")


@pytest.mark.slow
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_crash_recovery_many_power_cuts(tmp_path, version):
    await crash_campaign(tmp_path, version, 100)
