"""OCPP 1.6 profile figures: how long a full local authorization list of 10,000 entries takes.

``profiles16_local_list_full``: SendLocalList(Full, 10,000 entries) sent by a CsmsSimulator
-> its CALLRESULT Accepted read back, on the real daemon (``sys.executable -m agent run``,
mock HAL), which validates, stores the list in SQLite (replacing the previous one) and answers.
The CSMS then checks the stored version with GetLocalListVersion, so a fast but wrong answer
cannot pass for a figure.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from ocpp.v16 import call as call16

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.bench import daemon
from tests.bench.bench_foundation import HEARTBEAT_INTERVAL_S
from tests.bench.core16_helpers import race_process
from tests.bench.registry import Figure, benchmark, below

STATION = "CP16-BENCH-LIST"
ENTRIES = 10_000


def _entries(prefix: str) -> list[dict]:
    return [{"id_tag": f"{prefix}{i:05d}", "id_tag_info": {"status": "Accepted"}} for i in range(ENTRIES)]


class _Stamps:
    """The CSMS's frame hook: when the SendLocalList left it and when the answer arrived."""

    def __init__(self):
        self.sent = self.answered = 0.0

    def __call__(self, station_id: str, direction: str, text: str) -> None:
        if direction == "out" and '"SendLocalList"' in text[:80]:
            self.sent = time.perf_counter()
        elif direction == "in" and text.startswith("[3,") and '"status"' in text:
            self.answered = time.perf_counter()


async def _send_full(sim: CsmsSimulator, stamps: _Stamps, version: int, prefix: str) -> tuple[float, float]:
    """Seconds from the call to reading its Accepted answer, and on the wire (the CSMS's own encoding
    of 10,000 entries left out); checks the stored version."""
    request = call16.SendLocalList(list_version=version, update_type="Full", local_authorization_list=_entries(prefix))
    started = time.perf_counter()
    result = await sim.call(STATION, request)
    elapsed = time.perf_counter() - started
    if result.status != "Accepted":
        raise RuntimeError(f"SendLocalList answered {result.status}")
    on_the_wire = stamps.answered - stamps.sent
    stored = await sim.call(STATION, call16.GetLocalListVersion())
    if stored.list_version != version:
        raise RuntimeError(f"list version {stored.list_version} stored, {version} sent")
    return elapsed, on_the_wire


@benchmark("profiles16_local_list_full", goal=below(1.0, "s"))
async def profiles16_local_list_full(ctx) -> list[Figure]:
    """SendLocalList Full of 10,000 entries -> Accepted, on the real daemon (each replaces the last)."""
    runs = 3 if ctx.settings.quick else 10
    stamps = _Stamps()
    sim = CsmsSimulator(ocpp_version="1.6", behaviour=CsmsBehaviour(heartbeat_interval=HEARTBEAT_INTERVAL_S),
                        on_frame=stamps)
    await sim.start()
    timings = []
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            workdir = Path(tmp)
            log_path = workdir / "agent.log"
            process = await daemon.spawn_agent(daemon.write_config(workdir, sim.url, station_id=STATION), log_path)
            try:
                registered = asyncio.ensure_future(sim.wait_for_station(STATION, timeout=30))
                await race_process(registered, process, what="registration", log_path=log_path)
                for run in range(1, runs + 1):
                    sent = asyncio.ensure_future(_send_full(sim, stamps, run, f"R{run}-"))
                    await race_process(sent, process, what=f"list {run}", log_path=log_path)
                    timings.append(sent.result())
            finally:
                await daemon.stop_agent(process)
    finally:
        await sim.stop()
    wire = [w for _, w in timings]
    note = f"{runs} full lists of {ENTRIES} entries: " + ", ".join(f"{w:.3f}" for w in wire) + " s"
    return [Figure("median from the frame leaving the CSMS", statistics.median(wire), "s", note=note),
            Figure("max from the frame leaving the CSMS", max(wire), "s", goal=None),
            Figure("median from the CSMS's call (its own encoding included)",
                   statistics.median(t for t, _ in timings), "s", goal=None)]
