"""Core 2.0.1 figures: what a GetVariables round trip costs, how fast a full inventory report arrives.

1. ``core201_getvariables_cpu``: the real daemon's CPU per GetVariables round trip (10 variables),
   against a bare `ocpp`-library 2.0.1 station doing the same in its own process; the two
   (and the bare station with in-loop validation) answer in turns, connected side by side.
2. ``core201_full_inventory``: GetBaseReport(FullInventory) sent -> the CSMS has read the last
   NotifyReport (tbc false), on the real daemon.

Both run ``sys.executable -m agent run`` (OCPP 2.0.1, two EVSEs, mock HAL) against a
CsmsSimulator on loopback in the benchmark's own event loop, as the 1.6 figures do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from pathlib import Path

from ocpp.v201 import call as call201

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.bench import daemon
from tests.bench.bench_foundation import HEARTBEAT_INTERVAL_S
from tests.bench.core16_helpers import CpuMeter, race_process, stop_process
from tests.bench.core201_helpers import (
    VARIABLES, get_variable_data, spawn_bare_station, values_of, write_config,
)
from tests.bench.registry import Figure, Goal, benchmark, below

WARMUP = 5  # first round trips build schema validators and caches: not the steady cost
EVSES = 2   # as core201_helpers.write_config configures the daemon
GETVAR_STATION = "CP201-BENCH-GETVAR"
REPORT_STATION = "CP201-BENCH-REPORT"
# GetVariables round trips per turn. The stations answer in turns rather than one whole series
# after the other, so a change in the host (another job, CPU frequency) weighs on all of them
# alike: on a shared 2-core host, whole series one after the other gave 0.88x and 1.11x for
# the same code.
TURN = 100


def _runs(ctx, full: int, quick: int) -> int:
    return quick if ctx.settings.quick else full


async def _csms(on_frame=None, *, ocpp_version: str = "2.0.1") -> CsmsSimulator:
    sim = CsmsSimulator(ocpp_version=ocpp_version, behaviour=CsmsBehaviour(heartbeat_interval=HEARTBEAT_INTERVAL_S),
                        on_frame=on_frame)
    await sim.start()
    return sim


async def _registered(sim: CsmsSimulator, station_id: str) -> None:
    """Wait for every EVSE's first StatusNotification and the startup security event.

    The security event goes out through the outbox after registration; waiting for it
    keeps that delivery out of the measured window.
    """
    def done() -> bool:
        mine = [r for r in sim.received if r.station_id == station_id]
        evses = {r.payload["evseId"] for r in mine if r.action == "StatusNotification"}
        return len(evses) >= EVSES and any(r.action == "SecurityEventNotification" for r in mine)

    await sim.wait_for(done, timeout=20)


@contextlib.asynccontextmanager
async def _running_daemon(sim: CsmsSimulator, workdir: Path, station_id: str, *, ocpp_version: str = "2.0.1"):
    """`ocpp-agent run` on 2.0.1 (or 2.1), registered with ``sim``; yields the process, stops it on exit."""
    log_path = workdir / "agent.log"
    process = await daemon.spawn_agent(write_config(workdir, sim.url, station_id=station_id,
                                                     ocpp_version=ocpp_version), log_path)
    try:
        await race_process(_registered(sim, station_id), process, what="registration", log_path=log_path)
        yield process
    finally:
        await daemon.stop_agent(process)


# ------------------------------------------------------------------ 1. GetVariables CPU

@benchmark("core201_getvariables_cpu", goal=Goal("<=", 1.2))
async def core201_getvariables_cpu(ctx) -> list[Figure]:
    """CPU per GetVariables (10 variables) round trip: the real daemon vs. a bare `ocpp` 2.0.1 station."""
    return await getvariables_cpu(ctx, ocpp_version="2.0.1")


async def getvariables_cpu(ctx, *, ocpp_version: str) -> list[Figure]:
    """The GetVariables CPU figures of the daemon and bare `ocpp` stations speaking ``ocpp_version`` (2.0.1, 2.1)."""
    runs = _runs(ctx, 2000, 500)
    sim = await _csms(ocpp_version=ocpp_version)
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            workdir = Path(tmp)
            async with _running_daemon(sim, workdir, GETVAR_STATION, ocpp_version=ocpp_version) as process:
                agent = _Answerer(GETVAR_STATION, process.pid)
                values_path = workdir / "values.json"
                values_path.write_text(json.dumps(await agent.warm_up(sim)))
                async with _bare_station(sim, workdir, values_path, sync_validation=False,
                                         ocpp_version=ocpp_version) as bare, \
                        _bare_station(sim, workdir, values_path, sync_validation=True,
                                      ocpp_version=ocpp_version) as sync:
                    await bare.warm_up(sim)
                    await sync.warm_up(sim)
                    await _take_turns(sim, [agent, bare, sync], runs)
    finally:
        await sim.stop()
    agent_us, bare_us, sync_us = (a.cpu_per_round_trip_s * 1e6 for a in (agent, bare, sync))
    return [
        Figure("agent CPU per round trip", agent_us, "µs", goal=None,
               note=f"{runs} round trips, {len(VARIABLES)} variables each, in turns of {TURN} with the bare "
                    "stations; utime+stime of the daemon; by thread (schedstat): " + agent.breakdown()),
        Figure("bare ocpp CPU per round trip", bare_us, "µs", goal=None,
               note=f"ocpp.v{ocpp_version.replace('.', '')}.ChargePoint on a websockets client, same variables from "
                    "a fixed table; by thread: "
                    + bare.breakdown()),
        Figure("ratio agent/bare", agent_us / bare_us, "x",
               note="utime+stime of each answering process over its own round trips, the simulator's not counted"),
        Figure("bare ocpp, validation in the loop, CPU per round trip", sync_us, "µs", goal=None,
               note="the library's ASYNC_VALIDATION off, so it validates in the event loop as the agent does; "
                    "by thread: " + sync.breakdown()),
        Figure("ratio agent/bare, validation in the loop", agent_us / sync_us, "x", goal=None,
               note="how much of the margin is the library's own thread-pool hop"),
        Figure("agent wall per round trip", agent.wall_s / agent.runs * 1e3, "ms", goal=None,
               note="as the CSMS simulator sees it, its own time included"),
        Figure("bare wall per round trip", bare.wall_s / bare.runs * 1e3, "ms", goal=None),
    ]


async def _take_turns(sim: CsmsSimulator, answerers: list["_Answerer"], runs: int) -> None:
    for done in range(0, runs, TURN):
        for answerer in answerers:
            await answerer.turn(sim, min(TURN, runs - done))


class _Answerer:
    """One answering process: CPU and wall time summed over its turns of GetVariables round trips."""

    def __init__(self, station_id: str, pid: int):
        self.station_id, self.pid = station_id, pid
        self.cpu_s = self.wall_s = 0.0
        self.runs = 0
        self.threads: dict[int, daemon.ThreadSample] = {}
        self._request = call201.GetVariables(get_variable_data=get_variable_data())

    @property
    def cpu_per_round_trip_s(self) -> float:
        return self.cpu_s / self.runs

    async def warm_up(self, sim: CsmsSimulator) -> dict[str, str]:
        """Round trips that build validators and caches; returns the values, after checking all are answered."""
        for _ in range(WARMUP * 4):
            result = await sim.call(self.station_id, self._request)
        return values_of(result.get_variable_result)

    async def turn(self, sim: CsmsSimulator, runs: int) -> None:
        meter = CpuMeter(self.pid)
        meter.start()
        started = time.perf_counter()
        for _ in range(runs):
            await sim.call(self.station_id, self._request)
        self.wall_s += time.perf_counter() - started
        meter.stop()
        self.cpu_s += meter.cpu_s
        self.runs += runs
        for t in meter.per_thread:
            seen = self.threads.get(t.tid, daemon.ThreadSample(t.tid, t.name, 0.0, 0))
            self.threads[t.tid] = daemon.ThreadSample(t.tid, t.name, seen.cpu_s + t.cpu_s, seen.wakeups + t.wakeups)

    def breakdown(self) -> str:
        """Per-thread schedstat CPU per round trip, in µs, busiest first."""
        busiest = sorted(self.threads.values(), key=lambda t: -t.cpu_s)
        return ", ".join(f"{t.name} {t.cpu_s / self.runs * 1e6:.0f} µs ({t.wakeups / self.runs:.1f} wake-ups)"
                         for t in busiest if t.cpu_s > 0)


@contextlib.asynccontextmanager
async def _bare_station(sim: CsmsSimulator, workdir: Path, values_path: Path, *, sync_validation: bool,
                       ocpp_version: str = "2.0.1"):
    """A bare `ocpp` 2.0.1 (or 2.1) station connected to ``sim``; yields its ``_Answerer``, stops it on exit."""
    station_id = "CP201-BENCH-BARE-SYNC" if sync_validation else "CP201-BENCH-BARE"
    log_path = workdir / f"{station_id}.log"
    process = await spawn_bare_station(sim.url, station_id, values_path, log_path, sync_validation=sync_validation,
                                       ocpp_version=ocpp_version)
    try:
        await race_process(sim.wait_for_station(station_id, timeout=20), process,
                           what="the bare station's connection", log_path=log_path)
        yield _Answerer(station_id, process.pid)
    finally:
        await stop_process(process)


# ------------------------------------------------------------------ 2. GetBaseReport(FullInventory)

class _ReportStamps:
    """The simulator's frame hook: when GetBaseReport left and each NotifyReport arrived, per request id."""

    def __init__(self):
        self.sent: dict[int, float] = {}
        self.parts: dict[int, list[dict]] = {}
        self._last: dict[int, asyncio.Future] = {}

    def expect(self, request_id: int) -> asyncio.Future:
        """A future for the monotonic time the NotifyReport with tbc false of ``request_id`` is read."""
        future = asyncio.get_running_loop().create_future()
        self._last[request_id] = future
        return future

    def __call__(self, station_id: str, direction: str, text: str) -> None:
        now = time.monotonic()  # first thing: parsing below is the benchmark's cost, not the agent's
        if '"NotifyReport"' not in text and '"GetBaseReport"' not in text:
            return
        frame = json.loads(text)
        if frame[0] != 2:
            return
        request_id = frame[3]["requestId"]
        if direction == "out" and frame[2] == "GetBaseReport":
            self.sent[request_id] = now
        elif direction == "in" and frame[2] == "NotifyReport":
            self.parts.setdefault(request_id, []).append(frame[3])
            future = self._last.get(request_id)
            if not frame[3].get("tbc", False) and future is not None and not future.done():
                future.set_result(now)


@benchmark("core201_full_inventory", goal=below(1.0, "s"))
async def core201_full_inventory(ctx) -> list[Figure]:
    """GetBaseReport(FullInventory) sent -> the CSMS has read the last NotifyReport (real daemon, 2 EVSEs)."""
    return await full_inventory(ctx, ocpp_version="2.0.1")


async def full_inventory(ctx, *, ocpp_version: str) -> list[Figure]:
    """The full-inventory report figures of the daemon speaking ``ocpp_version`` (2.0.1, 2.1)."""
    runs = _runs(ctx, 20, 5)
    stamps = _ReportStamps()
    sim = await _csms(stamps, ocpp_version=ocpp_version)
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            log_path = Path(tmp) / "agent.log"
            async with _running_daemon(sim, Path(tmp), REPORT_STATION, ocpp_version=ocpp_version) as process:
                timings = []
                for request_id in range(1, runs + 1):
                    # A task, so its result can be read after racing it against the daemon's exit.
                    report = asyncio.ensure_future(_report_once(sim, stamps, request_id))
                    await race_process(report, process, what=f"report {request_id}", log_path=log_path)
                    timings.append(report.result())
    finally:
        await sim.stop()
    return _report_figures(timings, stamps)


async def _report_once(sim: CsmsSimulator, stamps: _ReportStamps, request_id: int) -> tuple[float, float]:
    """One full inventory: seconds to the last NotifyReport from the call's start, and from the
    moment the GetBaseReport frame was handed to the CSMS's socket."""
    last = stamps.expect(request_id)
    started = time.monotonic()
    result = await sim.call(REPORT_STATION, call201.GetBaseReport(request_id=request_id, report_base="FullInventory"))
    if result.status != "Accepted":
        raise RuntimeError(f"GetBaseReport {request_id}: {result.status}")
    done = await asyncio.wait_for(last, 10.0)
    return done - started, done - stamps.sent[request_id]


def _report_figures(timings: list[tuple[float, float]], stamps: _ReportStamps) -> list[Figure]:
    from_call = [total for total, _ in timings]
    from_wire = [after_send for _, after_send in timings]
    messages, items = _check_reports(stamps.parts, len(timings))
    return [
        Figure("median", statistics.median(from_call), "s",
               note=f"{len(from_call)} reports, one after another, the first on a fresh daemon: "
                    + ", ".join(f"{t * 1e3:.1f}" for t in from_call) + " ms"),
        Figure("max", max(from_call), "s", goal=None),
        Figure("median from the frame leaving the CSMS", statistics.median(from_wire), "s", goal=None,
               note="without the simulator's own send path (the ocpp library validates the CALL in a thread pool)"),
        Figure("NotifyReport messages per report", messages, "msgs", goal=None),
        Figure("report items per report", items, "items", goal=None,
               note="reportData entries over all NotifyReport messages of one report"),
    ]


def _check_reports(parts: dict[int, list[dict]], runs: int) -> tuple[int, int]:
    """(messages, items) of one report, after checking every report arrived whole and in order."""
    shapes = set()
    for request_id in range(1, runs + 1):
        messages = parts.get(request_id, [])
        if [m["seqNo"] for m in messages] != list(range(len(messages))) or not messages or messages[-1].get("tbc"):
            raise RuntimeError(f"report {request_id}: NotifyReport seqNo/tbc out of order: "
                               + str([(m["seqNo"], m.get("tbc")) for m in messages]))
        shapes.add((len(messages), sum(len(m["reportData"]) for m in messages)))
    if len(shapes) != 1:
        raise RuntimeError(f"reports differ in size between runs: {sorted(shapes)}")
    return shapes.pop()
