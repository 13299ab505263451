"""Foundation figures: how fast the daemon registers, and what it costs when idle.

All three are measured on the real daemon process (mock HAL, temp data dir)
connected to a CsmsSimulator on loopback that runs in the benchmark's own loop.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.bench import daemon
from tests.bench.registry import Figure, benchmark, below, equal

BOOT_TIMEOUT_S = 20.0
# After BootNotification arrives the agent still has to read the reply and adopt the
# interval; starting the idle window a moment later keeps that work out of "idle".
SETTLE_S = 1.0
# The production default: with it no Heartbeat falls into a 60 s window, so "idle" is idle.
HEARTBEAT_INTERVAL_S = 300


@dataclass
class _Frames:
    """Frame observer for the simulator: when each station's BootNotification arrived, and a frame count."""

    boot_at: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def __call__(self, station_id: str, direction: str, text: str) -> None:
        # Stamped where the frame is read off the socket, not when a waiter gets scheduled.
        now = time.perf_counter()
        self.count += 1
        if direction == "in" and station_id not in self.boot_at and '"BootNotification"' in text:
            self.boot_at[station_id] = now


async def _start_csms(frames: _Frames, *, ocpp_version: str = "1.6") -> CsmsSimulator:
    sim = CsmsSimulator(ocpp_version=ocpp_version, behaviour=CsmsBehaviour(heartbeat_interval=HEARTBEAT_INTERVAL_S),
                        on_frame=frames)
    await sim.start()
    return sim


async def _wait_for_boot(sim: CsmsSimulator, frames: _Frames, process, station_id: str, log_path: Path) -> None:
    """Return once the CSMS has the station's BootNotification; fail fast if the agent dies first."""
    booted = asyncio.ensure_future(sim.wait_for(lambda: station_id in frames.boot_at, timeout=BOOT_TIMEOUT_S))
    exited = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait({booted, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not booted.done():
        booted.cancel()
        raise RuntimeError(f"agent exited with {process.returncode} before BootNotification:\n"
                           + daemon.log_tail(log_path))
    if booted.exception() is not None:
        raise RuntimeError(f"no BootNotification within {BOOT_TIMEOUT_S:g} s:\n" + daemon.log_tail(log_path))


# ------------------------------------------------------------------ 1. start -> BootNotification

async def _boot_once(sim: CsmsSimulator, frames: _Frames, station_id: str, *,
                     ocpp_version: str = "1.6") -> tuple[float, int | None]:
    """One cold start in a fresh data dir: (seconds from spawn to BootNotification, exit status)."""
    with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
        workdir = Path(tmp)
        config = daemon.write_config(workdir, sim.url, station_id=station_id, ocpp_version=ocpp_version)
        log_path = workdir / "agent.log"
        started = time.perf_counter()
        process = await daemon.spawn_agent(config, log_path)
        try:
            await _wait_for_boot(sim, frames, process, station_id, log_path)
        finally:
            status = await daemon.stop_agent(process)
        return frames.boot_at[station_id] - started, status


@benchmark("start_to_boot", goal=below(1.0, "s"))
async def start_to_boot(ctx) -> list[Figure]:
    """Wall time from spawning `ocpp-agent run` until the CSMS has its BootNotification."""
    frames = _Frames()
    sim = await _start_csms(frames)
    try:
        runs = [await _boot_once(sim, frames, f"CP-BENCH-{i}") for i in range(ctx.settings.boot_repeats)]
    finally:
        await sim.stop()
    times = [seconds for seconds, _ in runs]
    unclean = [status for _, status in runs if status != 0]
    return [
        Figure("median", statistics.median(times), "s", note=f"{len(times)} runs: " + ", ".join(f"{t:.3f}" for t in times)),
        Figure("max", max(times), "s"),
        Figure("SIGTERM exits != 0", len(unclean), "runs", goal=equal(0),
               note=f"exit statuses {unclean} (None = killed after {daemon.STOP_TIMEOUT_S:g} s)" if unclean else ""),
    ]


# ------------------------------------------------------------------ 2 + 3. one idle run

@dataclass(frozen=True)
class IdleRun:
    """What one connected-idle window of the daemon cost (plain data, shared by two benchmarks)."""

    window_s: float
    rss_kib: int
    hwm_kib: int
    anon_kib: int   # private heap: what the agent itself costs
    file_kib: int   # mapped files (libpython, libssl, ...): shared with other processes, reclaimable
    cpu_s: float
    threads: int
    per_thread: list[daemon.ThreadSample]
    frames_in_window: int
    reconnects: int
    exit_status: int | None


async def measure_idle(ctx, *, ocpp_version: str = "1.6") -> IdleRun:
    """Boot the daemon, let it sit connected for ``idle_s``, sample /proc at both ends, stop it."""
    frames = _Frames()
    sim = await _start_csms(frames, ocpp_version=ocpp_version)
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            return await _idle_in(Path(tmp), sim, frames, ctx.settings.idle_s, ocpp_version=ocpp_version)
    finally:
        await sim.stop()


async def _idle_in(workdir: Path, sim: CsmsSimulator, frames: _Frames, idle_s: float, *,
                   ocpp_version: str = "1.6") -> IdleRun:
    station_id = "CP-BENCH-IDLE"
    log_path = workdir / "agent.log"
    config = daemon.write_config(workdir, sim.url, station_id=station_id, ocpp_version=ocpp_version)
    process = await daemon.spawn_agent(config, log_path)
    try:
        await _wait_for_boot(sim, frames, process, station_id, log_path)
        await asyncio.sleep(SETTLE_S)
        pid, frames_before = process.pid, frames.count
        cpu_before, threads_before = daemon.cpu_seconds(pid), daemon.sample_threads(pid)
        window_start = time.perf_counter()
        await asyncio.sleep(idle_s)
        cpu_after, threads_after = daemon.cpu_seconds(pid), daemon.sample_threads(pid)
        window = time.perf_counter() - window_start
        status = daemon.read_status(pid)
        if process.returncode is not None:
            raise RuntimeError(f"agent exited with {process.returncode} during the idle window:\n"
                               + daemon.log_tail(log_path))
    finally:
        exit_status = await daemon.stop_agent(process)
    return IdleRun(
        window_s=window,
        rss_kib=daemon.status_kib(status, "VmRSS"),
        hwm_kib=daemon.status_kib(status, "VmHWM"),
        anon_kib=daemon.status_kib(status, "RssAnon"),
        file_kib=daemon.status_kib(status, "RssFile"),
        cpu_s=cpu_after - cpu_before,
        threads=int(status["Threads"]),
        per_thread=daemon.thread_deltas(threads_before, threads_after),
        frames_in_window=frames.count - frames_before,
        reconnects=sim.connections - 1,
        exit_status=exit_status,
    )


def _idle_note(run: IdleRun) -> str:
    return f"after {run.window_s:.1f} s connected idle (heartbeat {HEARTBEAT_INTERVAL_S} s)"


@benchmark("idle_rss", goal=below(40.0, "MiB"))
async def idle_rss(ctx) -> list[Figure]:
    """Resident memory of the daemon after a connected-idle window."""
    run = await ctx.shared("idle", measure_idle)
    return [
        Figure("VmRSS", run.rss_kib / 1024, "MiB", note=_idle_note(run)),
        Figure("VmHWM (peak)", run.hwm_kib / 1024, "MiB", goal=None),
        Figure("RssAnon (private)", run.anon_kib / 1024, "MiB", goal=None),
        Figure("RssFile (mapped files)", run.file_kib / 1024, "MiB", goal=None),
    ]


@benchmark("idle_cpu", goal=below(0.06, "s"))
async def idle_cpu(ctx) -> list[Figure]:
    """CPU time (utime+stime) the daemon spends in the same connected-idle window."""
    run = await ctx.shared("idle", measure_idle)
    by_thread = "; ".join(f"{t.name} {t.cpu_s * 1000:.1f} ms, {t.wakeups} wake-ups" for t in run.per_thread)
    quiet = run.frames_in_window == 0 and run.reconnects == 0
    return [
        Figure("CPU utime+stime", run.cpu_s, "s", note=_idle_note(run)),
        Figure("CPU (schedstat, ns resolution)", sum(t.cpu_s for t in run.per_thread), "s", goal=None,
               note="stat counts whole 10 ms clock ticks; schedstat is the precise figure"),
        Figure("CPU per minute (schedstat)", sum(t.cpu_s for t in run.per_thread) * 60 / run.window_s,
               "s/min", goal=None),
        Figure("threads", run.threads, "", goal=None),
        Figure("wake-ups (voluntary ctx switches)", sum(t.wakeups for t in run.per_thread), "", goal=None,
               note=by_thread),
        Figure("OCPP frames in window", run.frames_in_window, "", goal=None,
               note="" if quiet else f"not idle: {run.frames_in_window} frames, {run.reconnects} reconnects"),
        Figure("SIGTERM exit status", -1 if run.exit_status is None else run.exit_status, "", goal=equal(0),
               note=f"killed after {daemon.STOP_TIMEOUT_S:g} s" if run.exit_status is None else ""),
    ]
