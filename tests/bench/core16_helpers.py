"""Helpers for ``bench_core16``: percentiles, waits, process CPU, and a bare `ocpp` charge point.

Run as a module, this file is the bare charge point the GetConfiguration CPU
benchmark compares the agent with: the `ocpp` library's own ``ChargePoint`` on a
`websockets` client, answering GetConfiguration with a fixed key list::

    python -m tests.bench.core16_helpers URL STATION_ID KEYS_JSON_PATH [--sync-validation]

It is the floor for "an OCPP 1.6 station in Python" (the library validates
request and response against the schemas too), so agent/bare says what our own
layers (threads, message log, settings, RPC checks) cost on top of it.

By default the library validates in a thread pool (``ocpp.messages.ASYNC_VALIDATION``),
a hop per message; ``--sync-validation`` validates in the event loop, as the agent does.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

from tests.bench import daemon

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESS_TIMEOUT_S = 20.0


# ------------------------------------------------------------------ statistics

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): always a measured value, never interpolated.

    With 50 samples p99 is the maximum; with 200 it is the 198th fastest.
    """
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def describe_ms(values: list[float]) -> str:
    """min / mean / max of a list of seconds, in ms, for a figure's note."""
    return (f"{len(values)} samples: min {min(values) * 1e3:.3f}, mean {sum(values) / len(values) * 1e3:.3f},"
            f" max {max(values) * 1e3:.3f} ms")


async def wakeup_lag(samples: int = 500, sleep_s: float = 0.001) -> list[float]:
    """How late ``asyncio.sleep`` wakes up on this host, with nothing else running in the loop.

    The latency figures' tails are only as good as the host: on a busy or virtualised
    machine (CPU steal) an idle loop already wakes milliseconds late now and then, and
    a p99 above that floor is the agent's, not the host's.
    """
    lags = []
    for _ in range(samples):
        started = time.monotonic()
        await asyncio.sleep(sleep_s)
        lags.append(time.monotonic() - started - sleep_s)
    return lags


# ------------------------------------------------------------------ waiting

async def poll_until(predicate: Callable[[], object], *, timeout: float = 5.0, interval: float = 0.001,
                     what: str = "condition"):
    """Poll ``predicate`` every ``interval`` until truthy; return its value or raise TimeoutError.

    Only used for state without an event to wait on, and never inside a timed interval's clock:
    the figures come from timestamps taken where things happen, not from when this loop notices.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := predicate()):
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g} s")
        await asyncio.sleep(interval)
    return result


async def race_process(waiting: asyncio.Future, process: asyncio.subprocess.Process, *,
                       what: str, log_path: Path) -> None:
    """Await ``waiting``; fail at once (with the log tail) if ``process`` exits first."""
    waiting = asyncio.ensure_future(waiting)
    exited = asyncio.ensure_future(process.wait())
    try:
        await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not waiting.done():
        waiting.cancel()
        raise RuntimeError(f"process exited with {process.returncode} before {what}:\n" + daemon.log_tail(log_path))
    if waiting.exception() is not None:
        raise RuntimeError(f"no {what} within the timeout:\n" + daemon.log_tail(log_path)) from waiting.exception()


# ------------------------------------------------------------------ process CPU

class CpuMeter:
    """CPU a process spends between ``start()`` and ``stop()``: utime+stime and per-thread schedstat.

    utime+stime (``/proc/<pid>/stat``) covers every thread, even ones that ended in
    between, in 10 ms ticks; schedstat is per live thread, in ns, and shows where
    the time went (main loop vs. the transport's reader and writer threads).
    """

    def __init__(self, pid: int):
        self.pid = pid
        self.cpu_s = 0.0
        self.per_thread: list[daemon.ThreadSample] = []
        self._cpu0 = 0.0
        self._threads0: dict[int, daemon.ThreadSample] = {}

    def start(self) -> None:
        self._threads0 = daemon.sample_threads(self.pid)
        self._cpu0 = daemon.cpu_seconds(self.pid)

    def stop(self) -> None:
        self.cpu_s = daemon.cpu_seconds(self.pid) - self._cpu0
        self.per_thread = daemon.thread_deltas(self._threads0, daemon.sample_threads(self.pid))

    def breakdown(self, per: int) -> str:
        """Per-thread schedstat CPU divided by ``per`` round trips, in µs."""
        return ", ".join(f"{t.name} {t.cpu_s / per * 1e6:.0f} µs ({t.wakeups / per:.1f} wake-ups)"
                         for t in self.per_thread if t.cpu_s > 0)


# ------------------------------------------------------------------ the bare charge point

async def spawn_bare(module: str, url: str, station_id: str, data_path: Path, log_path: Path, *,
                     sync_validation: bool = False) -> asyncio.subprocess.Process:
    """Start ``python -m <module> URL STATION_ID DATA_PATH`` (a bare-library peer) from the repository root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    with open(log_path, "wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, url, station_id, str(data_path),
            *(["--sync-validation"] if sync_validation else []),
            cwd=REPO_ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )


async def spawn_bare_charge_point(url: str, station_id: str, keys_path: Path, log_path: Path, *,
                                  sync_validation: bool = False) -> asyncio.subprocess.Process:
    """Start the bare 1.6 charge point of this module."""
    return await spawn_bare("tests.bench.core16_helpers", url, station_id, keys_path, log_path, sync_validation=sync_validation)


async def stop_process(process: asyncio.subprocess.Process) -> int | None:
    """SIGTERM and wait; kill if it does not go."""
    if process.returncode is not None:
        return process.returncode
    process.terminate()
    try:
        return await asyncio.wait_for(process.wait(), PROCESS_TIMEOUT_S)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return None


def _bare_charge_point_class():
    # Imported here so the benchmark process does not pay for it when it only imports the helpers.
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action

    class BareChargePoint(ChargePoint):
        """The `ocpp` library's ChargePoint with one handler: GetConfiguration from a fixed list."""

        def __init__(self, station_id: str, connection, keys: list[dict]):
            super().__init__(station_id, connection)
            self._keys = keys

        @on(Action.get_configuration)
        def on_get_configuration(self, key: list[str] | None = None, **_):
            return call_result.GetConfiguration(configuration_key=self._keys)

    return BareChargePoint


async def serve_bare(url: str, station_id: str, *, subprotocol: str, charge_point) -> None:
    """Connect to ``url/station_id`` and let ``charge_point(ws)`` answer until the CSMS closes."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    # No keepalive pings: the agent under comparison is measured without any in the window either.
    async with connect(f"{url}/{station_id}", subprotocols=[subprotocol], ping_interval=None) as ws:
        try:
            await charge_point(ws).start()
        except ConnectionClosed:
            pass


def bare_main(argv: list[str], *, module: str, what: str, serve: Callable) -> int:
    """``URL STATION_ID DATA_JSON_PATH [--sync-validation]``: run ``serve(url, station_id, data)``."""
    sync_validation = "--sync-validation" in argv
    argv = [arg for arg in argv if arg != "--sync-validation"]
    if len(argv) != 3:
        print(f"usage: python -m {module} URL STATION_ID DATA_JSON_PATH [--sync-validation]", file=sys.stderr)
        return 2
    url, station_id, data_path = argv
    if sync_validation:
        import ocpp.messages

        ocpp.messages.ASYNC_VALIDATION = False
    data = json.loads(Path(data_path).read_text())
    started = time.monotonic()
    asyncio.run(serve(url, station_id, data))
    print(f"{what} {station_id}: served {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


async def serve_bare_charge_point(url: str, station_id: str, keys: list[dict]) -> None:
    """The bare 1.6 charge point answering GetConfiguration with ``keys``."""
    cls = _bare_charge_point_class()
    await serve_bare(url, station_id, subprotocol="ocpp1.6", charge_point=lambda ws: cls(station_id, ws, keys))


def main(argv: list[str]) -> int:
    """Serve the bare 1.6 charge point."""
    return bare_main(argv, module="tests.bench.core16_helpers", what="bare charge point", serve=serve_bare_charge_point)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
