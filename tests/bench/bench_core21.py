"""OCPP 2.1 figures beside the 2.0.1 ones: the same measurements on the daemon speaking 2.1.

1. ``core2x_boot_idle``: start -> BootNotification, VmRSS and CPU after a connected-idle window, for
   2.0.1 and 2.1 one after the other on the same host (as ``start_to_boot``/``idle_rss``/``idle_cpu``
   measure 1.6), so growth between the versions shows in one table.
2. ``core21_getvariables_cpu``: ``core201_getvariables_cpu`` on 2.1 (the bare station: ``ocpp.v21``).
3. ``core21_full_inventory``: ``core201_full_inventory`` on 2.1.
4. ``core2x_tap_authorize``: ``core16_tap_authorize`` (card tap -> the CSMS reads the Authorize frame,
   in-process agent, no cache, no pre-authorization) on 2.0.1 and on 2.1.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator

from tests.bench.bench_core201 import full_inventory, getvariables_cpu
from tests.bench.bench_foundation import HEARTBEAT_INTERVAL_S, _boot_once, _Frames, _start_csms, measure_idle
from tests.bench.core16_helpers import percentile, poll_until, wakeup_lag
from tests.bench.registry import Figure, Goal, benchmark, below
from tests.harness import agent_config, running_agent

VERSIONS = ("2.0.1", "2.1")
WARMUP = 5  # first taps build schema validators and SQL statements: not what a driver waits for


@benchmark("core2x_boot_idle", goal=below(40.0, "MiB"))
async def core2x_boot_idle(ctx) -> list[Figure]:
    """2.0.1 and 2.1 side by side: start -> BootNotification, idle VmRSS and idle CPU of the daemon."""
    figures = []
    for version in VERSIONS:
        frames = _Frames()
        sim = await _start_csms(frames, ocpp_version=version)
        try:
            boots = [(await _boot_once(sim, frames, f"CP-BENCH-{version}-{i}", ocpp_version=version))[0]
                     for i in range(ctx.settings.boot_repeats)]
        finally:
            await sim.stop()
        idle = await measure_idle(ctx, ocpp_version=version)
        cpu = sum(t.cpu_s for t in idle.per_thread)
        figures += [
            Figure(f"{version} start to BootNotification, median", statistics.median(boots), "s", goal=below(1.0, "s"),
                   note=f"{len(boots)} runs: " + ", ".join(f"{t:.3f}" for t in boots)),
            Figure(f"{version} idle VmRSS", idle.rss_kib / 1024, "MiB",
                   note=f"after {idle.window_s:.1f} s connected idle; RssAnon {idle.anon_kib / 1024:.1f} MiB"),
            Figure(f"{version} idle CPU (schedstat)", cpu, "s", goal=below(0.06, "s"),
                   note=f"{cpu * 60 / idle.window_s:.3f} s/min, {idle.frames_in_window} frames in the window"),
        ]
    return figures


@benchmark("core21_getvariables_cpu", goal=Goal("<=", 1.2))
async def core21_getvariables_cpu(ctx) -> list[Figure]:
    """CPU per GetVariables (10 variables) round trip on 2.1: the real daemon vs. a bare `ocpp` 2.1 station."""
    return await getvariables_cpu(ctx, ocpp_version="2.1")


@benchmark("core21_full_inventory", goal=below(1.0, "s"))
async def core21_full_inventory(ctx) -> list[Figure]:
    """GetBaseReport(FullInventory) sent -> the CSMS has read the last NotifyReport, on 2.1 (real daemon, 2 EVSEs)."""
    return await full_inventory(ctx, ocpp_version="2.1")


class _AuthorizeStamps:
    """The simulator's frame hook: resolves a future when the CSMS reads the Authorize CALL of an idToken."""

    def __init__(self):
        self._expected: dict[str, asyncio.Future] = {}

    def expect(self, id_token: str) -> asyncio.Future:
        """A future for the monotonic time the CSMS reads the Authorize carrying ``id_token``."""
        future = asyncio.get_running_loop().create_future()
        self._expected[id_token] = future
        return future

    def __call__(self, station_id: str, direction: str, text: str) -> None:
        now = time.monotonic()  # first thing: parsing below is the benchmark's cost, not the agent's
        if direction != "in" or '"Authorize"' not in text:
            return
        frame = json.loads(text)
        future = self._expected.pop(frame[3]["idToken"]["idToken"], None) if frame[0] == 2 else None
        if future is not None and not future.done():
            future.set_result(now)


@benchmark("core2x_tap_authorize", goal=below(10.0, "ms"))
async def core2x_tap_authorize(ctx) -> list[Figure]:
    """Card tap on the mock reader -> the CSMS reads the Authorize frame, on 2.0.1 and 2.1 (in-process agent)."""
    runs = 50 if ctx.settings.quick else 200
    host_lag = await wakeup_lag()
    figures = []
    for version in VERSIONS:
        samples = await _taps(version, runs)
        figures += [Figure(f"{version} p50", percentile(samples, 50) * 1e3, "ms",
                           note=f"{runs} taps, each a new card, after {WARMUP} warm-up taps"),
                    Figure(f"{version} p99", percentile(samples, 99) * 1e3, "ms")]
    return figures + [Figure("host floor: idle loop wake-up lag p99", percentile(host_lag, 99) * 1e3, "ms", goal=None,
                             note="a p99 near this is the host's scheduling, not the agent")]


async def _taps(version: str, runs: int) -> list[float]:
    stamps = _AuthorizeStamps()
    sim = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=HEARTBEAT_INTERVAL_S),
                        on_frame=stamps)
    await sim.start()
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            # No cache, no pre-authorization: every tap must ask the CSMS.
            config = agent_config(Path(tmp), sim.url, ocpp_version=version, variables={
                "AuthCacheCtrlr.Enabled": False, "AuthCtrlr.LocalPreAuthorize": False})
            async with running_agent(config) as agent:
                await sim.wait_for(lambda: sim.calls("StatusNotification"), timeout=10)
                samples = [await _tap_once(agent, stamps, f"BENCHTAP{i:06d}") for i in range(WARMUP + runs)]
                if sim.calls("TransactionEvent"):
                    raise RuntimeError(f"{version}: a transaction started: the taps were meant to authorize only")
    finally:
        await sim.stop()
    return samples[WARMUP:]


async def _tap_once(agent, stamps: _AuthorizeStamps, card: str) -> float:
    """One tap; seconds to the wire, once the agent has handled the answer (the EVSE holds the authorization)."""
    arrived = stamps.expect(card)
    started = time.monotonic()
    agent.hal.tap(card)
    on_wire = await asyncio.wait_for(arrived, 5.0)
    evse = agent.station.evses[1]
    await poll_until(lambda: evse.authorization is not None and evse.authorization.id_token == card,
                     what=f"authorization of {card}")
    return on_wire - started
