"""Network faults: the CSMS restarts, cuts the connection mid-CALL, goes silent (half-open), answers
late, twice or with ids nobody asked for, and refuses connections for a long time. After each the
agent must be connected again and have delivered every transaction message exactly once and in
order; faults that leave the connection up must not make it reconnect.

Each fault hits a charging session in progress (in-process agent on the mock HAL, real WebSocket
CSMS, real SQLite outbox). The smoke test injects each kind once, split over the two versions; the
full-size run repeats every kind on both (``RELIABILITY_NET_REPEAT``, default 5) and keeps the CSMS
away for ``RELIABILITY_OUTAGE_S`` (default 180 s).
"""

import asyncio
import contextlib
import time

import pytest

from agent.testcsms.server import CsmsBehaviour
from tests.harness import agent_config, running_agent, wait_until
from tests.reliability.conftest import full_size
from tests.reliability.network import FaultyCsms, Refuser, StallingProxy, delivery_order_problems
from tests.reliability.power_cuts import TX_ACTIONS, audit_books, delivered, journal_rows

CARD = "04A1B2C3"
BACKOFF = {"OCPPCommCtrlr.RetryBackOffWaitMinimum": 1, "OCPPCommCtrlr.RetryBackOffRandomRange": 0,
           "OCPPCommCtrlr.RetryBackOffRepeatTimes": 3}
BACKOFF_CAP_S = 8  # 1 s doubled three times
KEEPS_CONNECTION = ("late", "twice", "unknown_ids")


class NetworkBench:
    """One OCPP version: a FaultyCsms behind a StallingProxy, and an agent connected through it."""

    def __init__(self, tmp_path, version: str, figures):
        self.tmp_path, self.version, self.figures = tmp_path, version, figures
        self.csms = FaultyCsms(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300), late_s=2.5)
        self.counts: dict[str, dict] = {}
        self.extra: dict[str, list] = {"half_open_detected_s": [], "backoff_delays_s": [], "back_online_s": []}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self):
        await self.csms.start()
        self.port = self.csms.port
        self.proxy = StallingProxy(self.port)
        await self.proxy.start()
        self._stack.push_async_callback(self.proxy.close)
        self._stack.push_async_callback(self._stop_csms)
        config = agent_config(
            self.tmp_path, f"ws://127.0.0.1:{self.proxy.port}/ocpp", ocpp_version=self.version,
            csms={"response_timeout_s": 1.5, "ping_timeout_s": 1.0},
            configuration={"MeterValueSampleInterval": 1, "WebSocketPingInterval": 1,
                           "AllowOfflineTxForUnknownId": True},
            variables={"SampledDataCtrlr.TxUpdatedInterval": 1, **BACKOFF})
        self.agent = await self._stack.enter_async_context(running_agent(config))
        await self.csms.wait_for_station("CP1", timeout=10)
        await self.csms.wait_for_call("StatusNotification", timeout=10)
        return self

    async def __aexit__(self, *exc_info):
        await self._stack.aclose()

    async def _stop_csms(self):
        with contextlib.suppress(Exception):
            await self.csms.stop()

    # ------------------------------------------------------------ sessions

    def start_session(self) -> None:
        """Plug, tap, the EV asks for energy and draws 7.4 kW."""
        hal = self.agent.hal
        hal.plug(1)
        hal.tap(CARD)
        hal.ev_charge(1, True)
        hal.set_power(1, 7400)

    def end_session(self) -> None:
        """Unplug: the session ends (EVDisconnected)."""
        self.agent.hal.unplug(1)

    async def session_around(self, fault, *, charge_s: float = 1.2) -> None:
        """A session with ``fault`` (a coroutine function) happening while it charges."""
        self.start_session()
        await fault()
        await asyncio.sleep(charge_s)
        self.end_session()

    # ------------------------------------------------------------ the faults

    async def restart(self) -> None:
        """The CSMS goes down (close frames) and is back a moment later."""
        async def fault():
            await asyncio.sleep(0.5)
            await self.csms.stop()
            await asyncio.sleep(0.5)
            await self.csms.start(port=self.port)
        await self.session_around(fault)

    async def reply(self, kind: str) -> None:
        """The answer to the session's first transaction CALL is late, doubled, preceded or never sent."""
        done = self.csms.arm(kind, TX_ACTIONS[self.version])

        async def fault():
            await asyncio.wait_for(done.wait(), 10)
        await self.session_around(fault)

    async def half_open(self) -> None:
        """The link goes silent without closing: only ping/pong can tell."""
        async def fault():
            await asyncio.sleep(0.3)
            before = self.csms.connections
            self.proxy.stall()
            stalled = time.monotonic()
            await self.csms.wait_for(lambda: self.csms.connections > before, timeout=10)
            self.extra["half_open_detected_s"].append(round(time.monotonic() - stalled, 2))
        await self.session_around(fault)

    async def refused(self, outage_s: float) -> None:
        """Nothing answers on the CSMS port for ``outage_s``: every connection is reset at once."""
        await self.csms.stop()
        refuser = Refuser(self.port)
        await refuser.start()
        try:
            self.start_session()  # offline: the session goes to the outbox
            await asyncio.sleep(min(1.5, outage_s / 2))
            self.end_session()
            await asyncio.sleep(max(0.0, outage_s - 1.5))
        finally:
            await refuser.stop()
        before = self.csms.connections
        await self.csms.start(port=self.port)
        back = time.monotonic()
        await self.csms.wait_for(lambda: self.csms.connections > before, timeout=BACKOFF_CAP_S + 5)
        self.extra["back_online_s"].append(round(time.monotonic() - back, 2))
        delays = refuser.delays()
        self.extra["backoff_delays_s"].append(delays)
        check_backoff(delays, outage_s)

    # ------------------------------------------------------------ checks

    async def inject(self, kind: str, **options) -> None:
        """Inject one fault of ``kind`` during a session and check the agent recovered from it."""
        connections = self.csms.connections
        started = time.monotonic()
        if kind in ("restart", "half_open"):
            await getattr(self, kind)()
        elif kind == "refused":
            await self.refused(options.get("outage_s", 3.0))
        else:
            await self.reply(kind)
        entry = self.counts.setdefault(kind, {"injected": 0, "recovered": 0, "reconnects": 0, "max_recovery_s": 0})
        entry["injected"] += 1
        await self.recovered()
        entry["recovered"] += 1
        entry["reconnects"] += self.csms.connections - connections
        entry["max_recovery_s"] = max(entry["max_recovery_s"], round(time.monotonic() - started, 1))
        if kind in KEEPS_CONNECTION:
            assert self.csms.connections == connections, f"{kind}: the agent reconnected"
        else:
            assert self.csms.connections > connections, f"{kind}: the agent never reconnected"

    async def recovered(self) -> None:
        """Connected, outbox drained, every transaction exactly once at the CSMS and in order."""
        db = self.tmp_path / "data" / "state.sqlite"
        await wait_until(lambda: "CP1" in self.csms.stations and delivered(db), timeout=30, interval=0.1)
        books = audit_books(self.version, self.csms, journal_rows(db))
        assert not books["lost"] and not books["duplicated"], books
        assert not books["meter_violations"], books["meter_violations"]
        assert books["exactly_once"] == books["journal"], books
        assert not delivery_order_problems(self.version, self.csms), delivery_order_problems(self.version, self.csms)

    def record(self, name: str) -> None:
        """Figures: per fault kind injected / recovered, and the timings seen."""
        db = self.tmp_path / "data" / "state.sqlite"
        books = audit_books(self.version, self.csms, journal_rows(db))
        self.figures.record("network_faults", f"{name} {self.version}", version=self.version, faults=self.counts,
                            transactions=books["journal"], exactly_once=books["exactly_once"],
                            identical_retransmissions=books["retransmitted"], **self.extra)


def check_backoff(delays: list[float], outage_s: float) -> None:
    """Randomness is off (RandomRange 0): the waits are at least the 1 s minimum (no tight loop), never
    shorter than the one before, never beyond the cap, and a long outage reaches the cap. (The first
    refused attempt may fail before the refuser listens, so the waits are not checked from 1 s on;
    the bounds leave room for a loaded machine.)"""
    assert all(d >= 0.9 for d in delays), delays
    assert all(b >= a - 0.3 for a, b in zip(delays, delays[1:])), delays
    assert all(d <= BACKOFF_CAP_S * 1.1 + 1 for d in delays), delays
    if outage_s >= 3 * BACKOFF_CAP_S:
        assert max(delays) >= BACKOFF_CAP_S - 0.3, delays


async def _campaign(tmp_path, version, figures, name, plan):
    async with NetworkBench(tmp_path / version, version, figures) as bench:
        try:
            for kind, options in plan:
                await bench.inject(kind, **options)
        finally:
            bench.record(name)
        assert all(c["injected"] == c["recovered"] for c in bench.counts.values())


async def test_network_faults_smoke_each_kind_once(tmp_path, figures):
    plan16 = [("restart", {}), ("drop", {}), ("twice", {}), ("late", {})]
    plan201 = [("half_open", {}), ("unknown_ids", {}), ("refused", {"outage_s": 2.5})]
    await asyncio.gather(_campaign(tmp_path, "1.6", figures, "smoke", plan16),
                         _campaign(tmp_path, "2.0.1", figures, "smoke", plan201))


@pytest.mark.reliability
async def test_network_faults_full(tmp_path, figures):
    repeat = int(full_size("RELIABILITY_NET_REPEAT", 5))
    outage = full_size("RELIABILITY_OUTAGE_S", 180)
    kinds = ("restart", "drop", "half_open", "late", "twice", "unknown_ids", "refused")
    plan = [(kind, {}) for _ in range(repeat) for kind in kinds] + [("refused", {"outage_s": outage})]
    await asyncio.gather(_campaign(tmp_path, "1.6", figures, "full", plan),
                         _campaign(tmp_path, "2.0.1", figures, "full", plan))
