"""Hardware-layer figures: what polling real Modbus meters costs.

Two SDM630 meters with different device ids share one RS-485 line (a socat pty
pair); a separate process plays the meters, so only the agent side is measured.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from hal.drivers.modbus_meter import close_all_buses, open_meter
from tests.bench.registry import Figure, benchmark, below
from tests.hal.modbus_sim import PtyPair

BAUD = 115200  # ptys ignore it; a fast rate keeps the computed transmission times small


async def _meters_on_a_line(directory: Path):
    pair = PtyPair(directory)
    await pair.start()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.hal.modbus_sim", pair.meter_port, "sdm630:1", "sdm630:2",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    meters = [await open_meter(evse_id, emit=lambda event: None, model="sdm630", port=pair.bus_port,
                               device_id=evse_id, baudrate=BAUD) for evse_id in (1, 2)]
    for meter in meters:
        await meter.start()
    for _ in range(50):  # wait until the simulator answers
        try:
            await meters[0].read()
            break
        except Exception:
            await asyncio.sleep(0.1)
    return pair, server, meters


async def _close(pair, server, meters) -> None:
    for meter in meters:
        await meter.stop()
    await close_all_buses()
    server.terminate()
    await server.wait()
    await pair.stop()


@benchmark("hal_polling", goal=below(1.0, "%"))
async def hal_polling(ctx):
    """2 EVSEs' meters polled at 1 Hz on one line: CPU share of one core, and read latency."""
    seconds = 10 if ctx.settings.quick else 60
    with tempfile.TemporaryDirectory(prefix="bench-hal-", dir="/tmp") as tmp:
        pair, server, meters = await _meters_on_a_line(Path(tmp))
        latencies: list[float] = []
        try:
            cpu_before, wall_before = time.process_time(), time.monotonic()
            for _ in range(seconds):
                tick = time.monotonic()
                for meter in meters:
                    started = time.perf_counter()
                    await meter.read()
                    latencies.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
            cpu = time.process_time() - cpu_before
            wall = time.monotonic() - wall_before
        finally:
            await _close(pair, server, meters)
    latencies.sort()
    return [
        Figure("CPU share, 2 meters at 1 Hz", 100 * cpu / wall, "%"),
        Figure("CPU per poll", 1e6 * cpu / len(latencies), "µs", goal=None),
        Figure("read latency p50", statistics.median(latencies), "ms", goal=None),
        Figure("read latency p99", latencies[int(0.99 * (len(latencies) - 1))], "ms", goal=None),
    ]
