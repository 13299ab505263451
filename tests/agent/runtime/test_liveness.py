"""The watchdog is petted only while every loop ticks."""

import asyncio

from agent.app import Agent
from agent.runtime.liveness import Liveness
from tests.harness import agent_config


class RecordingNotifier:
    def __init__(self):
        self.lines = []

    def notify(self, *lines):
        self.lines.extend(lines)

    def ready(self, status=""):
        self.notify("READY=1")

    def stopping(self):
        self.notify("STOPPING=1")

    def watchdog(self):
        self.notify("WATCHDOG=1")

    def close(self):
        pass

    def watchdog_interval_s(self):
        return 0.05


def test_liveness_reports_stale_loops(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("agent.runtime.liveness.time.monotonic", lambda: now[0])
    liveness = Liveness()
    a, b = liveness.register("a"), liveness.register("b")
    now[0] = 110.0
    a.tick()
    assert liveness.stale(5.0) == ["b"]
    b.tick()
    assert liveness.stale(5.0) == []


async def test_watchdog_stops_petting_when_a_loop_stalls(tmp_path, csms):
    notifier = RecordingNotifier()
    agent = Agent(agent_config(tmp_path, csms.url), notifier=notifier)
    await agent.start()
    try:
        await asyncio.sleep(0.3)
        assert "WATCHDOG=1" in notifier.lines
        stalled = agent.liveness.register("stuck-loop")
        stalled.last -= 1000  # a loop that stopped ticking long ago
        await asyncio.sleep(0.1)
        notifier.lines.clear()
        await asyncio.sleep(0.3)
        assert "WATCHDOG=1" not in notifier.lines
    finally:
        await agent.shutdown()
