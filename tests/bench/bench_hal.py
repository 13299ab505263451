"""Hardware-layer figures: what polling real Modbus meters costs.

Two SDM630 meters with different device ids share one RS-485 line (a socat pty
pair); a separate process plays the meters, so only the agent side is measured.
The meters are polled as the agent polls them: started, by their line's one
poller on its timer, with nothing else running in the process.
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
                               device_id=evse_id, baudrate=BAUD, poll_interval_s=1.0) for evse_id in (1, 2)]
    for _ in range(50):  # wait until the simulator answers (before polling starts)
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


@benchmark("hal_polling", goal=below(0.3, "%"))
async def hal_polling(ctx):
    """2 EVSEs' meters polled at 1 Hz on one line by their poller: CPU share of one core, poll latency."""
    seconds = 10 if ctx.settings.quick else 60
    with tempfile.TemporaryDirectory(prefix="bench-hal-", dir="/tmp") as tmp:
        pair, server, meters = await _meters_on_a_line(Path(tmp))
        latencies: list[float] = []
        failures = 0
        for meter in meters:
            meter.add_listener(lambda evse_id, reading, meter=meter: latencies.append(1000 * meter.last_poll_s)
                               if reading is not None else None)
        try:
            for meter in meters:
                await meter.start()
            await asyncio.sleep(0.5)  # past the first polls (port already open)
            latencies.clear()
            polls_before = meters[0].poller.polls
            cpu_before, wall_before = time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)  # the agent idles; only the poller's timer wakes it
            cpu = time.process_time() - cpu_before
            wall = time.monotonic() - wall_before
            polls = meters[0].poller.polls - polls_before
            failures = sum(m.consecutive_failures for m in meters) + sum(m.offline for m in meters)
        finally:
            await _close(pair, server, meters)
    latencies.sort()
    return [
        Figure("CPU share, 2 meters at 1 Hz", 100 * cpu / wall, "%"),
        Figure("CPU per poll", 1e6 * cpu / max(1, polls), "µs", goal=None),
        Figure("polls per second", polls / wall, "/s", goal=None, note="2 expected: a timer, not a loop"),
        Figure("poll latency p50", statistics.median(latencies), "ms", goal=None),
        Figure("poll latency p99", latencies[int(0.99 * (len(latencies) - 1))], "ms", goal=None),
        Figure("meters failing at the end", failures, "", goal=None),
    ]
