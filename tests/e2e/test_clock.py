"""End to end: the real daemon on a board clock that is wrong, then stepped (libfaketime), both OCPP versions.

A Raspberry Pi has no RTC: it boots with a stale time and NTP steps the board
clock later. libfaketime changes the time of the daemon process only: its
wall clock follows the offset written to a file (re-read at every call), its
monotonic clock stays the kernel's. The CSMS runs in this process on the true time.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.runtime.clock import format_iso
from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness.faketime import (
    LIBFAKETIME, THREE_DAYS, BoardClock, free_port, security_events, session, stamp, start_daemon,
    started_and_ended, stop_daemon, write_config,
)

pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime missing: install Debian package faketime")

VERSIONS = ["1.6", "2.0.1"]
#: How far from the true time a stamp may be: what we look for is a 3-day error, not the latency of a loaded machine.
CLOSE_S = 10.0


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
        (corrected,) = security_events(csms, "SettingSystemTime")
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
        (startup,) = security_events(csms, "StartupOfTheDevice")
        assert startup == pytest.approx(booted, abs=CLOSE_S + 5)
        assert len(security_events(csms, "SettingSystemTime")) == 1
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
