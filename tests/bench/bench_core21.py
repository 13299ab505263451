"""OCPP 2.1 figures beside the 2.0.1 ones: the same measurements on the daemon speaking 2.1.

1. ``core2x_boot_idle``: start -> BootNotification, VmRSS and CPU after a connected-idle window, for
   2.0.1 and 2.1 one after the other on the same host (as ``start_to_boot``/``idle_rss``/``idle_cpu``
   measure 1.6), so growth between the versions shows in one table.
2. ``core21_getvariables_cpu``: ``core201_getvariables_cpu`` on 2.1 (the bare station: ``ocpp.v21``).
3. ``core21_full_inventory``: ``core201_full_inventory`` on 2.1.
"""

from __future__ import annotations

import statistics

from tests.bench.bench_core201 import full_inventory, getvariables_cpu
from tests.bench.bench_foundation import _boot_once, _Frames, _start_csms, measure_idle
from tests.bench.registry import Figure, Goal, benchmark, below

VERSIONS = ("2.0.1", "2.1")


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
