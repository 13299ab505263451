"""End to end: the real daemon on a board clock that is wrong, then stepped (libfaketime), both OCPP versions.

A Raspberry Pi has no RTC: it boots with a stale time and NTP steps the board
clock later. libfaketime changes the time of the daemon process only: its
wall clock follows the offset written to a file (re-read at every call), its
monotonic clock stays the kernel's. The CSMS runs in this process on the true time.
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

import pytest

from agent.runtime.clock import format_iso
from agent.testcsms.server import CsmsBehaviour, CsmsSimulator

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))), None)
pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime missing: install Debian package faketime")

THREE_DAYS = 3 * 24 * 3600
VERSIONS = ["1.6", "2.0.1"]
#: How far from the true time a stamp may be: what we look for is a 3-day error, not the latency of a loaded machine.
CLOSE_S = 10.0


class BoardClock:
    """The daemon's wall clock: the true time plus an offset, stepped by rewriting the faketime file."""

    def __init__(self, path) -> None:
        self.path = path

    def set_offset(self, seconds: int) -> None:
        self.path.write_text(f"{seconds:+d}\n")

    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(self.path), "FAKETIME_NO_CACHE": "1",
                "DONT_FAKE_MONOTONIC": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def write_config(tmp_path, url: str, version: str) -> str:
    path = tmp_path / "agent.toml"
    path.write_text(textwrap.dedent(f"""
        [station]
        id = "CP-CLOCK"
        data_dir = "{tmp_path / 'data'}"
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


async def hal(tmp_path, command: dict) -> None:
    """A command to the daemon's mock HAL, retried while its control socket comes up."""
    from hal.mock.client import request

    socket_path = str(tmp_path / "data" / "mock-hal.sock")
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


async def session(tmp_path, *, charge_s: float) -> tuple[float, float]:
    """Plug in (free vend: the transaction starts), charge, unplug; the true times of plug and unplug."""
    await hal(tmp_path, {"cmd": "state"})  # the daemon is up
    plugged = time.time()
    for command in ({"cmd": "plug", "evse": 1}, {"cmd": "ev", "evse": 1, "charge": True},
                    {"cmd": "power", "evse": 1, "watts": 7200}):
        await hal(tmp_path, command)
    await asyncio.sleep(charge_s)
    unplugged = time.time()
    await hal(tmp_path, {"cmd": "unplug", "evse": 1})
    return plugged, unplugged


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def started_and_ended(csms: CsmsSimulator) -> tuple[float, float]:
    """The timestamps the CSMS received for the start and the end of the (one) transaction."""
    if csms.ocpp_version == "1.6":
        start = (await csms.wait_for_call("StartTransaction", timeout=20))[0].payload
        stop = (await csms.wait_for_call("StopTransaction", timeout=20))[0].payload
        return stamp(start["timestamp"]), stamp(stop["timestamp"])
    events = {}
    await csms.wait_for(lambda: {"Started", "Ended"} <= {c.payload["eventType"] for c in
                                                         csms.calls("TransactionEvent")}, timeout=20)
    for call in csms.calls("TransactionEvent"):
        events.setdefault(call.payload["eventType"], call.payload)
    return stamp(events["Started"]["timestamp"]), stamp(events["Ended"]["timestamp"])


async def security_events(csms: CsmsSimulator, kind: str) -> list[float]:
    return [stamp(c.payload["timestamp"]) for c in csms.calls("SecurityEventNotification")
            if c.payload["type"] == kind]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def board(tmp_path):
    clock = BoardClock(tmp_path / "faketime")
    clock.set_offset(-THREE_DAYS)  # the Pi boots with a stale clock
    return clock


@pytest.mark.parametrize("version", VERSIONS)
async def test_clock_stepped_after_sync_does_not_move_transaction_times(tmp_path, board, version):
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300))
    await csms.start()
    started = time.time()
    process = await start_daemon(write_config(tmp_path, csms.url, version), board)
    try:
        await csms.wait_for_call("BootNotification", timeout=20)  # the CSMS sets the time
        await csms.wait_for_call("StatusNotification", timeout=10)
        board.set_offset(0)  # then NTP steps the board clock to the right time
        plugged, unplugged = await session(tmp_path, charge_s=1.0)
        start, end = await started_and_ended(csms)
        assert start == pytest.approx(plugged, abs=CLOSE_S)  # not 72 h ahead
        assert end == pytest.approx(unplugged, abs=CLOSE_S)
        # (c) the 3-day correction at the boot is a security event, stamped in CSMS time.
        await csms.wait_for(lambda: csms.calls("SecurityEventNotification"), timeout=10)
        await asyncio.sleep(0.5)
        (corrected,) = await security_events(csms, "SettingSystemTime")
        assert corrected == pytest.approx(started, abs=CLOSE_S + 5)
    finally:
        log = await stop_daemon(process)
        await csms.stop()
    assert "Traceback" not in log, log


@pytest.mark.parametrize("version", VERSIONS)
async def test_clock_offline_session_before_first_sync_is_sent_with_corrected_times(tmp_path, board, version):
    port = free_port()
    url = f"ws://127.0.0.1:{port}/ocpp"
    booted = time.time()
    process = await start_daemon(write_config(tmp_path, url, version), board)
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300))
    try:
        plugged, unplugged = await session(tmp_path, charge_s=2.0)  # the CSMS cannot be reached meanwhile
        await asyncio.sleep(1.0)
        await csms.start(port=port)  # it comes up: BootNotification sets the time, the queue is sent
        start, end = await started_and_ended(csms)
        assert start == pytest.approx(plugged, abs=CLOSE_S)  # not 72 h in the past
        assert end == pytest.approx(unplugged, abs=CLOSE_S)
        await csms.wait_for(lambda: len(csms.calls("SecurityEventNotification")) >= 2, timeout=10)
        # The start-up event was recorded before the sync too: corrected like the transaction.
        (startup,) = await security_events(csms, "StartupOfTheDevice")
        assert startup == pytest.approx(booted, abs=CLOSE_S + 5)
        assert len(await security_events(csms, "SettingSystemTime")) == 1
    finally:
        log = await stop_daemon(process)
        await csms.stop()
    assert "Traceback" not in log, log


@pytest.mark.parametrize("version", VERSIONS)
async def test_clock_set_back_after_sync_moves_nothing_and_is_no_security_event(tmp_path, board, version):
    board.set_offset(0)  # right at boot: no correction worth an event
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=1))
    await csms.start()
    process = await start_daemon(write_config(tmp_path, csms.url, version), board)
    try:
        await csms.wait_for_call("SecurityEventNotification", timeout=20)  # StartupOfTheDevice
        await csms.wait_for_call("Heartbeat", count=2, timeout=10)
        board.set_offset(-THREE_DAYS)  # a user's `date -s` after the sync: the station time does not follow
        await csms.wait_for_call("Heartbeat", count=4, timeout=10)
        plugged, unplugged = await session(tmp_path, charge_s=1.0)
        start, end = await started_and_ended(csms)  # queued after anything the heartbeats recorded
        assert start == pytest.approx(plugged, abs=CLOSE_S) and end == pytest.approx(unplugged, abs=CLOSE_S)
        assert [c.payload["type"] for c in csms.calls("SecurityEventNotification")] == ["StartupOfTheDevice"]
    finally:
        log = await stop_daemon(process)
        await csms.stop()
    assert "Traceback" not in log, log


def heartbeat_answer_ahead(seconds: float):
    """A frame hook: the CSMS answers Heartbeat with its clock ``seconds`` ahead of the true time."""
    def hook(station_id: str, text: str) -> str | None:
        if '"Heartbeat"' not in text:
            return None
        message_id = text.split('"')[1]
        return f'[3,"{message_id}",{{"currentTime":"{format_iso(time.time() + seconds)}"}}]'
    return hook


@pytest.mark.parametrize("version", VERSIONS)
async def test_clock_heartbeat_correction_over_a_minute_is_reported_at_once(tmp_path, board, version):
    board.set_offset(0)
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=1))
    await csms.start()
    process = await start_daemon(write_config(tmp_path, csms.url, version), board)
    try:
        await csms.wait_for_call("SecurityEventNotification", timeout=20)  # StartupOfTheDevice
        csms.behaviour.frame_hook = heartbeat_answer_ahead(120)  # the CSMS's own clock is corrected
        await csms.wait_for(lambda: any(c.payload["type"] == "SettingSystemTime"
                                        for c in csms.calls("SecurityEventNotification")), timeout=5)
        (event,) = [c.payload for c in csms.calls("SecurityEventNotification") if c.payload["type"] != "StartupOfTheDevice"]
        assert stamp(event["timestamp"]) == pytest.approx(time.time() + 120, abs=CLOSE_S)
        assert "+120 s" in event["techInfo"]
    finally:
        log = await stop_daemon(process)
        await csms.stop()
    assert "Traceback" not in log, log
