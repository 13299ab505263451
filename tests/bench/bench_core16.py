"""Core 1.6 figures (issue [core-1.6]): how fast a tap and a remote start act, what a round trip costs.

1. ``core16_tap_authorize``: card tap -> Authorize frame read by the CSMS (in-process agent).
2. ``core16_remote_start``: RemoteStartTransaction sent -> contactor output commanded closed (in-process).
3. ``core16_getconfiguration_cpu``: the real daemon's CPU per GetConfiguration round trip,
   against a bare `ocpp`-library charge point doing the same in its own process.
4. ``core16_idle``: the real daemon with 2 EVSEs, registered and idle: CPU % and RSS.

The in-process benchmarks run agent and CSMS simulator in one event loop and stamp
start and end with ``time.monotonic`` (CLOCK_MONOTONIC, ns resolution on Linux), the
clock the mock HAL stamps its history with. Each end is stamped where it happens
(the simulator's frame hook, the mock HAL's history), not when the benchmark notices.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from pathlib import Path

from ocpp.v16 import call as call16

from agent.core.charging.model import ConnectorStatus
from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.bench import daemon
from tests.bench.bench_foundation import HEARTBEAT_INTERVAL_S, measure_idle
from tests.bench.core16_helpers import (
    CpuMeter, describe_ms, percentile, poll_until, race_process, spawn_bare_charge_point, stop_process, wakeup_lag,
)
from tests.bench.registry import Figure, Goal, benchmark, below
from tests.harness import agent_config, running_agent

STATION = "CP1"  # the id tests.harness gives the in-process agent
WARMUP = 5       # first runs build schema validators and SQL statements: not what a driver waits for
CONTACTOR = "evse1.contactor"


def _runs(ctx, full: int, quick: int) -> int:
    return quick if ctx.settings.quick else full


def _latency_figures(samples: list[float], *, what: str, host_lag: list[float]) -> list[Figure]:
    return [
        Figure("p50", percentile(samples, 50) * 1e3, "ms", note=f"{what}; {describe_ms(samples)}"),
        Figure("p99", percentile(samples, 99) * 1e3, "ms"),
        Figure("host floor: idle loop wake-up lag p99", percentile(host_lag, 99) * 1e3, "ms", goal=None,
               note=f"asyncio.sleep(1 ms) overshoot before the agent started, {describe_ms(host_lag)}; "
                    "a p99 near this is the host's scheduling, not the agent"),
    ]


class _WireStamps:
    """The simulator's frame hook: resolves a future when an expected CALL crosses the CSMS's socket."""

    def __init__(self):
        self._expected: dict[tuple[str, str, str], asyncio.Future] = {}

    def expect(self, direction: str, action: str, id_tag: str) -> asyncio.Future:
        """A future for the monotonic time the CSMS reads ("in") or writes ("out") CALL ``action``
        carrying ``id_tag``."""
        future = asyncio.get_running_loop().create_future()
        self._expected[(direction, action, id_tag)] = future
        return future

    def __call__(self, station_id: str, direction: str, text: str) -> None:
        now = time.monotonic()  # first thing: parsing below is the benchmark's cost, not the agent's
        if not self._expected:
            return
        frame = json.loads(text)
        if frame[0] != 2:
            return
        future = self._expected.pop((direction, frame[2], frame[3].get("idTag")), None)
        if future is not None and not future.done():
            future.set_result(now)


async def _csms(on_frame=None) -> CsmsSimulator:
    sim = CsmsSimulator(ocpp_version="1.6", behaviour=CsmsBehaviour(heartbeat_interval=HEARTBEAT_INTERVAL_S),
                        on_frame=on_frame)
    await sim.start()
    return sim


async def _registered(sim: CsmsSimulator, connectors: int) -> None:
    """Wait for BootNotification and the first StatusNotification of every connector (0 included)."""
    await sim.wait_for(lambda: len({r.payload["connectorId"] for r in sim.calls("StatusNotification")})
                       >= connectors + 1, timeout=10)


# ------------------------------------------------------------------ 1. tap -> Authorize

@benchmark("core16_tap_authorize", goal=below(10.0, "ms"))
async def core16_tap_authorize(ctx) -> list[Figure]:
    """Card tap on the mock reader -> the CSMS reads the Authorize frame (in-process agent, no cable)."""
    runs = _runs(ctx, 200, 50)
    host_lag = await wakeup_lag()
    wire = _WireStamps()
    sim = await _csms(wire)
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            # No cache, no pre-authorization: every tap must ask the CSMS.
            config = agent_config(Path(tmp), sim.url, configuration={
                "AuthorizationCacheEnabled": False, "LocalPreAuthorize": False})
            async with running_agent(config) as agent:
                await _registered(sim, connectors=1)
                samples = [await _tap_once(agent, wire, f"BENCHTAP{i:06d}") for i in range(WARMUP + runs)][WARMUP:]
                started = len(sim.calls("StartTransaction"))
    finally:
        await sim.stop()
    if started:
        raise RuntimeError(f"{started} transactions started: the taps were meant to authorize only")
    return _latency_figures(samples, what=f"{runs} taps, each a new card, after {WARMUP} warm-up taps",
                            host_lag=host_lag)


async def _tap_once(agent, wire: _WireStamps, card: str) -> float:
    """One tap; returns seconds to the wire, after the agent has fully handled the answer."""
    arrived = wire.expect("in", "Authorize", card)
    started = time.monotonic()
    agent.hal.tap(card)
    on_wire = await asyncio.wait_for(arrived, 5.0)
    # Handled: the CSMS's Accepted came back and the (only) EVSE holds the authorization.
    evse = agent.station.evses[1]
    await poll_until(lambda: evse.authorization is not None and evse.authorization.id_token == card,
                     what=f"authorization of {card}")
    return on_wire - started


# ------------------------------------------------------------------ 2. RemoteStart -> contactor

@benchmark("core16_remote_start", goal=below(10.0, "ms"))
async def core16_remote_start(ctx) -> list[Figure]:
    """RemoteStartTransaction sent by the CSMS -> mock contactor output commanded closed (EV in state C)."""
    runs = _runs(ctx, 200, 50)
    host_lag = await wakeup_lag()
    wire = _WireStamps()
    sim = await _csms(wire)
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            config = agent_config(Path(tmp), sim.url, configuration={"AuthorizeRemoteTxRequests": False})
            async with running_agent(config) as agent:
                await _registered(sim, connectors=1)
                agent.hal.plug(1)
                agent.hal.ev_charge(1, True)  # the EV asks for energy before the start: the contactor closes with it
                await poll_until(lambda: sim.status[(STATION, 1)] == "Preparing", what="Preparing")
                timings = [await _remote_start_once(agent, sim, wire, i) for i in range(WARMUP + runs)][WARMUP:]
    finally:
        await sim.stop()
    from_call = [total for total, _ in timings]
    from_wire = [after_send for _, after_send in timings]
    return [
        *_latency_figures(from_call, what=f"{runs} remote starts (stopped by a tap each), after {WARMUP} warm-up",
                          host_lag=host_lag),
        Figure("p99 from the frame leaving the CSMS", percentile(from_wire, 99) * 1e3, "ms", goal=None,
               note="without the simulator's own send path (the ocpp library validates the CALL in a thread "
                    f"pool first); p50 {percentile(from_wire, 50) * 1e3:.3f} ms"),
    ]


async def _remote_start_once(agent, sim: CsmsSimulator, wire: _WireStamps, i: int) -> tuple[float, float]:
    """One remote start and stop: seconds to the contactor output closing from the CALL's start,
    and from the moment its frame was handed to the CSMS's socket."""
    tag = f"REMOTE{i:06d}"
    history = agent.hal.history
    sent = wire.expect("out", "RemoteStartTransaction", tag)
    started = time.monotonic()
    result = await sim.call(STATION, call16.RemoteStartTransaction(id_tag=tag, connector_id=1))
    if result.status != "Accepted":
        raise RuntimeError(f"run {i}: RemoteStartTransaction {result.status}")
    closed_at = await poll_until(lambda: _closed_since(history, started), what=f"run {i}: contactor closed")
    agent.hal.tap(tag)  # the same card ends the session: no transaction id needed
    await sim.wait_for_call("StopTransaction", count=i + 1)
    # Ready for the next run: every outbox record answered, EVSE and CSMS both at Finishing.
    evse = agent.station.evses[1]
    await poll_until(lambda: agent.store.outbox.head() is None and evse.status is ConnectorStatus.FINISHING
                     and not agent.hal.evse(1).contactor.closed and sim.status[(STATION, 1)] == "Finishing",
                     what=f"run {i}: Finishing with an empty outbox")
    return closed_at - started, closed_at - sent.result()


def _closed_since(history: list, since: float) -> float | None:
    """The time the contactor output was commanded closed at or after ``since``, if it was."""
    for stamp, device, value in reversed(history):
        if stamp < since:
            return None
        if device == CONTACTOR and value is True:
            return stamp
    return None


# ------------------------------------------------------------------ 3. GetConfiguration CPU

@benchmark("core16_getconfiguration_cpu", goal=Goal("<=", 1.2))
async def core16_getconfiguration_cpu(ctx) -> list[Figure]:
    """CPU per GetConfiguration (all keys) round trip: the real daemon vs. a bare `ocpp` charge point."""
    runs = _runs(ctx, 2000, 500)
    sim = await _csms()
    try:
        with tempfile.TemporaryDirectory(prefix="ocpp-bench-") as tmp:
            workdir = Path(tmp)
            agent_run, keys = await _agent_round_trips(sim, workdir, runs)
            keys_path = workdir / "keys.json"
            keys_path.write_text(json.dumps(keys))
            bare_run = await _bare_round_trips(sim, workdir, keys_path, runs, sync_validation=False)
            sync_run = await _bare_round_trips(sim, workdir, keys_path, runs, sync_validation=True)
    finally:
        await sim.stop()
    agent_us, bare_us, sync_us = (run.cpu.cpu_s / runs * 1e6 for run in (agent_run, bare_run, sync_run))
    return [
        Figure("agent CPU per round trip", agent_us, "µs", goal=None,
               note=f"{runs} round trips, {len(keys)} keys; utime+stime of the daemon; by thread (schedstat): "
                    + agent_run.cpu.breakdown(runs)),
        Figure("bare ocpp CPU per round trip", bare_us, "µs", goal=None,
               note="ocpp.v16.ChargePoint on a websockets client, same key list; by thread: "
                    + bare_run.cpu.breakdown(runs)),
        Figure("ratio agent/bare", agent_us / bare_us, "x",
               note="utime+stime of each answering process over the same round trips, the simulator's not counted"),
        Figure("bare ocpp, validation in the loop, CPU per round trip", sync_us, "µs", goal=None,
               note="the library's ASYNC_VALIDATION off, so it validates in the event loop as the agent does; "
                    "by thread: " + sync_run.cpu.breakdown(runs)),
        Figure("ratio agent/bare, validation in the loop", agent_us / sync_us, "x", goal=None,
               note="how much of the margin is the library's own thread-pool hop"),
        Figure("agent wall per round trip", agent_run.wall_s / runs * 1e3, "ms", goal=None,
               note="as the CSMS simulator sees it, its own time included"),
        Figure("bare wall per round trip", bare_run.wall_s / runs * 1e3, "ms", goal=None),
    ]


class _RoundTrips:
    """CPU of the answering process and wall time of a series of GetConfiguration round trips."""

    def __init__(self, pid: int):
        self.cpu = CpuMeter(pid)
        self.wall_s = 0.0

    async def run(self, sim: CsmsSimulator, station_id: str, runs: int) -> None:
        for _ in range(WARMUP * 4):
            await sim.call(station_id, call16.GetConfiguration())
        self.cpu.start()
        started = time.perf_counter()
        for _ in range(runs):
            await sim.call(station_id, call16.GetConfiguration())
        self.wall_s = time.perf_counter() - started
        self.cpu.stop()


async def _agent_round_trips(sim: CsmsSimulator, workdir: Path, runs: int) -> tuple[_RoundTrips, list[dict]]:
    """Round trips against `ocpp-agent run`; also returns its key list for the bare charge point."""
    station_id = "CP-BENCH-GETCONF"
    log_path = workdir / "agent.log"
    process = await daemon.spawn_agent(daemon.write_config(workdir, sim.url, station_id=station_id), log_path)
    try:
        await race_process(_registered_station(sim, station_id, connectors=2), process,
                           what="registration", log_path=log_path)
        keys = (await sim.call(station_id, call16.GetConfiguration())).configuration_key
        measured = _RoundTrips(process.pid)
        await measured.run(sim, station_id, runs)
    finally:
        await daemon.stop_agent(process)
    return measured, keys


async def _registered_station(sim: CsmsSimulator, station_id: str, connectors: int) -> None:
    await sim.wait_for(lambda: len({r.payload["connectorId"] for r in sim.calls("StatusNotification")
                                    if r.station_id == station_id}) >= connectors + 1, timeout=20)


async def _bare_round_trips(sim: CsmsSimulator, workdir: Path, keys_path: Path, runs: int, *,
                            sync_validation: bool) -> _RoundTrips:
    station_id = "CP-BENCH-BARE-SYNC" if sync_validation else "CP-BENCH-BARE"
    log_path = workdir / f"{station_id}.log"
    process = await spawn_bare_charge_point(sim.url, station_id, keys_path, log_path,
                                            sync_validation=sync_validation)
    try:
        await race_process(sim.wait_for_station(station_id, timeout=20), process,
                           what="the bare charge point's connection", log_path=log_path)
        measured = _RoundTrips(process.pid)
        await measured.run(sim, station_id, runs)
    finally:
        await stop_process(process)
    return measured


# ------------------------------------------------------------------ 4. idle, 2 EVSEs

@benchmark("core16_idle", goal=below(0.1, "%"))
async def core16_idle(ctx) -> list[Figure]:
    """The daemon with 2 mock EVSEs, registered and idle: CPU % of one core and RSS over the idle window."""
    # The same run as the foundation's idle_rss/idle_cpu (2 EVSEs, mock HAL, heartbeat 300 s):
    # shared, so a full suite spends the idle window once.
    run = await ctx.shared("idle", measure_idle)
    precise_s = sum(t.cpu_s for t in run.per_thread)
    window = f"{run.window_s:.1f} s connected idle, {run.frames_in_window} OCPP frames, {run.reconnects} reconnects"
    return [
        Figure("CPU (schedstat)", precise_s / run.window_s * 100, "%", note=window + "; "
               + "; ".join(f"{t.name} {t.cpu_s * 1e3:.1f} ms, {t.wakeups} wake-ups" for t in run.per_thread)),
        Figure("CPU (utime+stime)", run.cpu_s / run.window_s * 100, "%", goal=None,
               note="whole 10 ms clock ticks: coarse at this level"),
        Figure("VmRSS", run.rss_kib / 1024, "MiB", goal=below(40.0, "MiB")),
        Figure("RssAnon (private)", run.anon_kib / 1024, "MiB", goal=None),
    ]
