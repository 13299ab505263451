"""The status socket end to end: a real agent on the mock HAL, a real CSMS, the real client over the socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time

from agent.config import parse_config
from agent.status import client
from agent.status.server import StatusServer
from agent.status.snapshot import LinkState
from agent.runtime.clock import Clock
from tests.harness import FAST_RETRY, running_agent, wait_until
from tests.harness import v201
from tests.harness.v16 import CARD, reach_status

POLL_S = 0.2  # [evse.meter] poll_interval_s: a power change shows at the next poll
PROMPT_S = 1.0  # a change must reach a watcher within this (the goal is < 0.5 s plus one poll)

EVSE_KEYS = {"id", "status", "power_W", "energy_Wh", "meter_Wh", "transaction_id", "faults", "current_limit_A"}


def config(tmp_path, url: str, *, ocpp_version: str = "1.6"):
    return parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
        "csms": {"url": url, "ocpp_version": ocpp_version, "response_timeout_s": 5.0},
        "evse": [{"id": 1, "meter": {"poll_interval_s": POLL_S}}],
        "hal": {"backend": "mock"},
        "ocpp201": {"variables": FAST_RETRY},
    })


class Watcher:
    """Collects what ``client.watch`` yields, with the monotonic time each arrived."""

    def __init__(self, data_dir):
        self.seen: list[tuple[float, dict]] = []
        self.task = asyncio.create_task(self._run(data_dir))

    async def _run(self, data_dir):
        async for status in client.watch(data_dir):
            self.seen.append((time.monotonic(), status))

    async def first_after(self, since: float, predicate, *, timeout: float = 3.0) -> float:
        """Seconds from ``since`` to the first snapshot, arrived after it, for which ``predicate`` holds."""
        def match():
            return next((at for at, s in self.seen if at >= since and predicate(s)), None)
        return await wait_until(match, timeout=timeout, interval=0.01) - since

    async def close(self):
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def test_status_snapshot_has_the_interface_shape(tmp_path, csms):
    async with running_agent(config(tmp_path, csms.url)) as agent:
        await reach_status(csms, "Available")
        status = await asyncio.to_thread(client.read_snapshot, tmp_path / "data")
        assert status["station_id"] == "CP1" and status["ocpp_version"] == "1.6"
        assert status["connected"] is True and status["connected_since"].endswith("Z")
        assert status["csms_url"] == f"{csms.url}/CP1"
        assert status["time"].endswith("Z") and status["display"] == agent.hal.display.text
        (evse,) = status["evses"]
        assert set(evse) == EVSE_KEYS
        assert evse["id"] == 1 and evse["status"] == "Available" and evse["transaction_id"] is None
        assert evse["energy_Wh"] is None and evse["faults"] == [] and evse["power_W"] == 0.0
        assert isinstance(evse["meter_Wh"], float)
        json.dumps(status)  # JSON-ready as it is
        mode = (tmp_path / "data" / "agent.sock").stat().st_mode & 0o777
        assert mode == 0o660
    assert not (tmp_path / "data" / "agent.sock").exists()  # removed at shutdown
    try:
        client.read_snapshot(tmp_path / "data")
    except client.AgentNotRunning:
        pass
    else:
        raise AssertionError("read_snapshot answered without an agent")


async def test_status_under_2_1_speaks_its_words_and_transaction_ids(tmp_path, csms_factory):
    csms = await csms_factory("2.1")
    async with running_agent(config(tmp_path, csms.url, ocpp_version="2.1")) as agent:
        await v201.reach_status(csms, "Available")
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        await csms.wait_for_call("TransactionEvent")
        status = await asyncio.to_thread(client.read_snapshot, tmp_path / "data")
        (evse,) = status["evses"]
        assert status["ocpp_version"] == "2.1" and status["connected"] is True
        assert evse["status"] == "Occupied"  # 2.x folds the session states into Occupied
        assert evse["transaction_id"] == agent.station.evse(1).transaction_ref and evse["energy_Wh"] == 0.0


async def test_status_watch_gets_each_change_within_a_second(tmp_path, csms):
    async with running_agent(config(tmp_path, csms.url)) as agent:
        await reach_status(csms, "Available")
        watcher = Watcher(tmp_path / "data")
        try:
            await wait_until(lambda: watcher.seen)
            hal = agent.hal
            start = time.monotonic()
            hal.plug(1)
            assert await watcher.first_after(start, lambda s: s["evses"][0]["status"] == "Preparing") < PROMPT_S
            start = time.monotonic()
            hal.tap(CARD)
            started = lambda s: s["evses"][0]["transaction_id"] is not None and s["evses"][0]["energy_Wh"] is not None
            assert await watcher.first_after(start, started) < PROMPT_S + 1  # + the CSMS's Authorize answer
            hal.ev_charge(1, True)
            start = time.monotonic()
            hal.set_power(1, 7200)
            assert await watcher.first_after(start, lambda s: s["evses"][0]["power_W"] == 7200.0) < PROMPT_S
            start = time.monotonic()
            hal.inject_fault(1, "reader-offline")
            assert await watcher.first_after(start, lambda s: "reader-offline" in s["evses"][0]["faults"]) < PROMPT_S
            start = time.monotonic()
            await csms.stop()  # the CSMS goes away (a dropped connection alone is back at once)
            assert await watcher.first_after(start, lambda s: s["connected"] is False) < PROMPT_S
            # Coalesced: even while charging (the energy moves at every poll) at most ~5 lines a second.
            times = [at for at, _ in watcher.seen]
            assert all(b - a >= 0.15 for a, b in zip(times[1:], times[2:]))
        finally:
            await watcher.close()


async def test_status_bad_requests_get_an_error_and_the_connection_stays_usable(tmp_path, csms):
    async with running_agent(config(tmp_path, csms.url)):
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "data" / "agent.sock"))
        try:
            for bad in (b"nonsense\n", b'{"cmd": "reboot"}\n', b"[1]\n", b'{"cmd": "snapshot", "x": 1}\n'):
                writer.write(bad)
                answer = json.loads(await asyncio.wait_for(reader.readline(), 2))
                assert answer["ok"] is False and answer["error"]
            writer.write(b'{"cmd": "snapshot"}\n')
            answer = json.loads(await asyncio.wait_for(reader.readline(), 2))
            assert answer["ok"] is True and answer["status"]["station_id"] == "CP1"
        finally:
            writer.close()


async def test_status_nobody_listening_builds_no_snapshot(tmp_path, csms):
    async with running_agent(config(tmp_path, csms.url)) as agent:
        await reach_status(csms, "Available")
        built = agent.status.snapshots
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        await reach_status(csms, "SuspendedEV")
        agent.hal.inject_fault(1, "reader-offline")
        await asyncio.sleep(3 * POLL_S)  # meter polls, each a change hook
        assert built.built == 0 and agent.status.server._push_timer is None
        watcher = Watcher(tmp_path / "data")
        try:
            await wait_until(lambda: watcher.seen)
            agent.hal.clear_fault(1, "reader-offline")
            await wait_until(lambda: any(s["evses"][0]["faults"] == [] for _, s in watcher.seen[1:]))
            assert built.built >= 2
            await asyncio.sleep(2 * POLL_S)
            settled = built.built
            await asyncio.sleep(3 * POLL_S)  # watched but idle: polls that change nothing build nothing
            assert built.built == settled
        finally:
            await watcher.close()
        await wait_until(lambda: agent.status.server.watchers == 0)
        count = built.built
        agent.hal.inject_fault(1, "reader-offline")
        await asyncio.sleep(3 * POLL_S)
        assert built.built == count  # the watcher left: nothing built any more


async def test_status_a_client_that_never_reads_does_not_stall_the_agent(tmp_path, csms):
    async with running_agent(config(tmp_path, csms.url)) as agent:
        await reach_status(csms, "Available")
        server = agent.status.server
        server.min_interval_s = server.settle_s = 0.0  # push at every change: fill its buffer fast
        server.stall_s = 1.0
        agent.hal.display.show("x" * 200_000)  # a fat snapshot: a few fill any socket buffer
        stuck = socket.socket(socket.AF_UNIX)
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(str(tmp_path / "data" / "agent.sock"))
        stuck.sendall(b'{"cmd": "watch"}\n')  # ...and never reads
        try:
            await wait_until(lambda: server.watchers == 1)
            watcher = Watcher(tmp_path / "data")
            await wait_until(lambda: watcher.seen)
            for i in range(40):  # many changes, each a push to both watchers
                agent.hal.display.show("x" * 200_000 + str(i))
                await asyncio.sleep(0.01)
            start = time.monotonic()
            agent.hal.plug(1)  # the agent goes on at once: status to the CSMS, the good watcher follows
            await reach_status(csms, "Preparing")
            assert time.monotonic() - start < 1.0
            assert await watcher.first_after(start, lambda s: s["evses"][0]["status"] == "Preparing") < PROMPT_S
            await wait_until(lambda: server.watchers == 1, timeout=5)  # the stuck one was dropped
            await watcher.close()
        finally:
            stuck.close()


async def test_status_a_stale_socket_file_is_replaced_at_start_and_watchers_learn_of_the_stop(tmp_path, csms):
    data = tmp_path / "data"
    data.mkdir()
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(data / "agent.sock"))  # a killed agent's leftover: a socket file nobody serves
    dead.close()
    async with running_agent(config(tmp_path, csms.url)):
        status = await asyncio.to_thread(client.read_snapshot, data)
        assert status["station_id"] == "CP1"
        stream = client.watch(data)
        assert (await anext(stream))["station_id"] == "CP1"
    try:  # the agent stopped: the watcher is told, not left hanging
        await asyncio.wait_for(anext(stream), 5)
    except client.AgentNotRunning:
        pass
    else:
        raise AssertionError("watch went on after the agent stopped")


async def test_status_server_answers_without_waiting_for_a_watcher(tmp_path):
    """changed() arms one timer and returns; a burst of hooks is one push."""
    builds = []
    server = StatusServer(tmp_path / "s.sock", build=lambda: builds.append(1) or {"n": len(builds)},
                          settle_s=0.05)
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "s.sock"))
        writer.write(b'{"cmd": "watch"}\n')
        assert json.loads(await reader.readline())["status"] == {"n": 1}
        for _ in range(100):
            server.changed()
        event = json.loads(await asyncio.wait_for(reader.readline(), 2))
        assert event == {"event": "status", "status": {"n": 2}} and len(builds) == 2
        writer.close()
    finally:
        await server.close()
    assert not (tmp_path / "s.sock").exists()


def test_status_url_never_shows_credentials():
    link = LinkState(default_url="ws://station:s3cret@csms.example:9000/ocpp/CP1", clock=Clock())
    assert link.public_url() == "ws://csms.example:9000/ocpp/CP1" and link.connected_since() is None
    link.changed(True, "wss://u:pw@csms.example/ocpp/CP1")
    assert "pw" not in link.public_url() and link.connected_since().endswith("Z")
