"""`ocpp-agent demo`: an embedded CSMS and an agent on the mock HAL, on loopback.

Everything runs in this process: the CSMS simulator listens on a random
loopback port, the agent connects to it exactly as it would to a real CSMS, and
every OCPP frame is printed as it crosses the wire.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time

from agent.config import parse_config
from agent.logs import configure_logging


class FramePrinter:
    """Prints OCPP frames as the CSMS sees them, with the time since the start."""

    def __init__(self, out=sys.stdout):
        self._out = out
        self._start = time.monotonic()
        self._actions: dict[str, str] = {}

    def __call__(self, station_id: str, direction: str, text: str) -> None:
        arrow = "station -> CSMS" if direction == "in" else "CSMS -> station"
        try:
            frame = json.loads(text)
            kind, message_id = frame[0], frame[1]
        except (ValueError, IndexError, KeyError, TypeError):
            kind, message_id, frame = None, "?", [text]
        if kind == 2:
            self._actions[message_id] = frame[2]
            label, body = frame[2], frame[3]
        else:
            label = self._actions.pop(message_id, "?") + (" result" if kind == 3 else " error")
            body = frame[2] if kind == 3 else frame[2:]
        elapsed = time.monotonic() - self._start
        print(f"{elapsed:6.2f}s  {arrow}  {label:<22} {json.dumps(body)[:110]}", file=self._out, flush=True)


def demo_config(*, url: str, data_dir: str, ocpp_version: str):
    """The demo agent's configuration: two EVSEs on the mock HAL."""
    return parse_config(
        {
            "station": {"id": "DEMO01", "data_dir": data_dir, "vendor": "ocpp-agent", "model": "demo"},
            "csms": {"url": url, "ocpp_version": ocpp_version},
            "evse": [{"id": 1, "max_current_A": 32.0}, {"id": 2, "max_current_A": 16.0, "phases": 1}],
            "hal": {"backend": "mock"},
            "logging": {"level": "warning"},
        }
    )


async def play(*, ocpp_version: str, interactive: bool, heartbeats: int = 2) -> int:
    """Start the CSMS and the agent, show the boot and heartbeats, stop cleanly."""
    from agent.app import Agent
    from agent.csms_sim import CsmsBehaviour, CsmsSimulator

    csms = CsmsSimulator(ocpp_version=ocpp_version, behaviour=CsmsBehaviour(heartbeat_interval=2),
                         on_frame=FramePrinter())
    url = await csms.start()
    print(f"CSMS listening on {url} (OCPP {ocpp_version})", flush=True)
    with tempfile.TemporaryDirectory(prefix="ocpp-agent-demo-") as data_dir:
        agent = Agent(demo_config(url=url, data_dir=data_dir, ocpp_version=ocpp_version))
        try:
            await agent.start()
            print(f"agent DEMO01 up on the mock HAL (data in {data_dir})", flush=True)
            await csms.wait_for_call("BootNotification", timeout=10)
            if interactive:
                print(f"interactive: drive it with `ocpp-agent sim` on {data_dir}/mock-hal.sock; Ctrl-C stops")
                await asyncio.Event().wait()
            await csms.wait_for_call("Heartbeat", count=heartbeats, timeout=10)
        finally:
            await agent.shutdown()
            await csms.stop()
    print("demo finished: agent stopped, outputs safe", flush=True)
    return 0


def run_demo(*, ocpp_version: str = "1.6", interactive: bool = False) -> int:
    """Entry point of `ocpp-agent demo`."""
    try:
        import websockets  # noqa: F401  (the embedded CSMS needs it)
    except ImportError:
        print("ocpp-agent demo needs the 'websockets' package: pip install 'ocpp-agent[demo]'", file=sys.stderr)
        return 1
    configure_logging("warning")
    logging.getLogger("agent").setLevel(logging.WARNING)
    try:
        return asyncio.run(play(ocpp_version=ocpp_version, interactive=interactive))
    except KeyboardInterrupt:
        return 0
    except asyncio.TimeoutError:
        print("demo failed: the agent did not reach the CSMS in time", file=sys.stderr)
        return 1
