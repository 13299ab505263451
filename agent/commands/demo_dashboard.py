"""The dashboard beside `ocpp-agent demo --interactive`: `ocpp-agent web` on the demo's config.

It runs as its own process, as on a charger (a web bug or load never touches the agent), on
127.0.0.1:8080 when that port is free, otherwise on any free loopback port, and stops with the demo.
Without aiohttp (the `web` extra) the demo runs on and says how to get the dashboard.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

PREFERRED_PORT = 8080  # the default of [web] listen
READY_TIMEOUT_S = 10.0


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pick_port() -> int:
    if _port_free(PREFERRED_PORT):
        return PREFERRED_PORT
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _listening(port: int, process: subprocess.Popen) -> bool:
    """Wait until the web process accepts connections; False if it exited or took too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while process.poll() is None and loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return True
    return False


async def start_dashboard(config_path: Path) -> tuple[subprocess.Popen | None, str]:
    """Start the dashboard for the demo agent; (process or None, the line to show the person)."""
    if importlib.util.find_spec("aiohttp") is None:
        return None, "dashboard: not started, it needs aiohttp: pip install 'ocpp-agent[web]'"
    port = _pick_port()
    # Its output goes to a file beside the demo's config (a pipe nobody reads could fill and stall it).
    log_path = config_path.parent / "web.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "web", "--config", str(config_path), "--listen", f"127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    if not await _listening(port, process):
        stop_dashboard(process)
        error = log_path.read_text(errors="replace").strip().splitlines()
        return None, "dashboard: did not start" + (f": {error[-1]}" if error else "")
    return process, f"dashboard: http://127.0.0.1:{port}/ (live status and message log)"


def stop_dashboard(process: subprocess.Popen | None) -> None:
    """SIGTERM the dashboard and wait for it (killed after 5 s)."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
