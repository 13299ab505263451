"""The real daemon on a board clock that is wrong, then stepped (libfaketime), for the clock measurements.

A Raspberry Pi has no RTC: it boots with a stale time and NTP steps the board clock later. libfaketime
changes the time of the daemon process only: its wall clock follows the offset written to a file (re-read
at every call), its monotonic clock stays the kernel's. The CSMS runs in the test process on the true time.
The same set-up as tests/e2e/test_clock.py, for the reliability run's clock figures.
"""

from __future__ import annotations

import asyncio
import glob
import os
import signal
import socket
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), None)
THREE_DAYS = 3 * 24 * 3600


class BoardClock:
    """The daemon's wall clock: the true time plus an offset, stepped by rewriting the faketime file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set_offset(self, seconds: int) -> None:
        """From now on the board clock reads the true time plus ``seconds``."""
        self.path.write_text(f"{seconds:+d}\n")

    def env(self) -> dict[str, str]:
        """The environment that puts a process on this clock."""
        return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(self.path), "FAKETIME_NO_CACHE": "1",
                "DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def write_config(directory: Path, url: str, version: str) -> str:
    """A free-vend mock-HAL daemon config (plugging in starts a transaction), state in ``directory/data``."""
    path = directory / "agent.toml"
    path.write_text(textwrap.dedent(f"""
        [station]
        id = "CP-CLOCK"
        data_dir = "{directory / 'data'}"
        free_vend = true
        [csms]
        url = "{url}"
        ocpp_version = "{version}"
        [[evse]]
        id = 1
        [hal]
        backend = "mock"
        [ocpp201.variables]
        "OCPPCommCtrlr.RetryBackOffWaitMinimum" = 1
        "OCPPCommCtrlr.RetryBackOffRandomRange" = 0
        "OCPPCommCtrlr.RetryBackOffRepeatTimes" = 0
        """))
    return str(path)


async def start_daemon(config_path: str, board: BoardClock):
    """``ocpp-agent run`` on ``board``'s clock (its log on stderr, a pipe)."""
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env.update(board.env())
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "run", "--config", config_path,
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def stop_daemon(process) -> str:
    """SIGTERM, a clean exit, and the daemon's log."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 15)
    finally:
        if process.returncode is None:
            process.kill()
    return (await process.stderr.read()).decode()


async def hal(directory: Path, command: dict) -> None:
    """A command to the daemon's mock HAL, retried while its control socket comes up."""
    from hal.mock.client import request

    socket_path = str(directory / "data" / "mock-hal.sock")
    deadline = time.monotonic() + 15
    while True:
        try:
            answer = await asyncio.to_thread(request, socket_path, command)
            break
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    assert answer["ok"], answer


async def session(directory: Path, *, charge_s: float) -> tuple[float, float]:
    """Plug in (free vend: the transaction starts), charge, unplug; the true times of plug and unplug."""
    await hal(directory, {"cmd": "state"})  # the daemon is up
    plugged = time.time()
    for command in ({"cmd": "plug", "evse": 1}, {"cmd": "ev", "evse": 1, "charge": True},
                    {"cmd": "power", "evse": 1, "watts": 7200}):
        await hal(directory, command)
    await asyncio.sleep(charge_s)
    unplugged = time.time()
    await hal(directory, {"cmd": "unplug", "evse": 1})
    return plugged, unplugged


def stamp(value: str) -> float:
    """An OCPP timestamp as a unix time."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def started_and_ended(csms) -> tuple[float, float]:
    """The timestamps the CSMS received for the start and the end of the (one) transaction."""
    if csms.ocpp_version == "1.6":
        start = (await csms.wait_for_call("StartTransaction", timeout=20))[0].payload
        stop = (await csms.wait_for_call("StopTransaction", timeout=20))[0].payload
        return stamp(start["timestamp"]), stamp(stop["timestamp"])
    await csms.wait_for(lambda: {"Started", "Ended"} <= {c.payload["eventType"] for c in
                                                         csms.calls("TransactionEvent")}, timeout=20)
    events = {}
    for call in csms.calls("TransactionEvent"):
        events.setdefault(call.payload["eventType"], call.payload)
    return stamp(events["Started"]["timestamp"]), stamp(events["Ended"]["timestamp"])


def security_events(csms, kind: str) -> list[float]:
    """The timestamps of the SecurityEventNotifications of type ``kind`` the CSMS received."""
    return [stamp(c.payload["timestamp"]) for c in csms.calls("SecurityEventNotification")
            if c.payload["type"] == kind]


def free_port() -> int:
    """A TCP port nobody listens on now (for a CSMS that comes up later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
