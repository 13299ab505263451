"""Clock faults: the real daemon on a board clock 3 days wrong (libfaketime), the situations of a Raspberry Pi
without an RTC, measured as the error of the times the CSMS receives.

Per version: the board clock stepped by 3 days after the CSMS set the time (NTP catching up); a session
while the CSMS is unreachable, before the first synchronisation of the boot, sent once it comes up; the
board clock set back 3 days after the synchronisation (a user's ``date -s``). The errors of the start and
end times the CSMS receives, against the true time of plug-in and unplug, must stay within seconds, not
days; a correction over a minute at a synchronisation is one SettingSystemTime security event.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from tests.harness.faketime import (LIBFAKETIME, THREE_DAYS, BoardClock, free_port, security_events, session,
                                    start_daemon, started_and_ended, stop_daemon, write_config)

pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime missing: install Debian package faketime")

#: The largest error of a received time that counts as right: the latency of a loaded machine, not days.
GOAL_S = 10.0


def _figure(scenario: str, plugged: float, unplugged: float, start: float, end: float, csms, log: str) -> dict:
    return {"scenario": scenario, "board_error_s": THREE_DAYS,
            "start_error_s": round(start - plugged, 2) + 0.0, "end_error_s": round(end - unplugged, 2) + 0.0,
            "setting_system_time_events": len(security_events(csms, "SettingSystemTime")),
            "traceback": "Traceback" in log}


async def stepped_after_sync(directory, version: str) -> dict:
    board = BoardClock(directory / "faketime")
    board.set_offset(-THREE_DAYS)  # the Pi boots with a stale clock
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300))
    await csms.start()
    process = await start_daemon(write_config(directory, csms.url, version), board)
    try:
        await csms.wait_for_call("BootNotification", timeout=20)  # the CSMS sets the time
        await csms.wait_for_call("StatusNotification", timeout=10)
        board.set_offset(0)  # then NTP steps the board clock
        plugged, unplugged = await session(directory, charge_s=1.0)
        start, end = await started_and_ended(csms)
        await csms.wait_for(lambda: security_events(csms, "SettingSystemTime"), timeout=10)
    finally:
        log = await stop_daemon(process)
        await csms.stop()
    return _figure("stepped 3 days after the sync", plugged, unplugged, start, end, csms, log)


async def offline_before_first_sync(directory, version: str) -> dict:
    board = BoardClock(directory / "faketime")
    board.set_offset(-THREE_DAYS)
    port = free_port()
    process = await start_daemon(write_config(directory, f"ws://127.0.0.1:{port}/ocpp", version), board)
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=300))
    try:
        plugged, unplugged = await session(directory, charge_s=2.0)  # the CSMS cannot be reached meanwhile
        await asyncio.sleep(1.0)
        await csms.start(port=port)  # it comes up: BootNotification sets the time, the queue is sent
        start, end = await started_and_ended(csms)
        await csms.wait_for(lambda: security_events(csms, "SettingSystemTime"), timeout=10)
    finally:
        log = await stop_daemon(process)
        await csms.stop()
    return _figure("offline session before the first sync", plugged, unplugged, start, end, csms, log)


async def set_back_after_sync(directory, version: str) -> dict:
    board = BoardClock(directory / "faketime")
    board.set_offset(0)  # right at boot: no correction worth an event
    csms = CsmsSimulator(ocpp_version=version, behaviour=CsmsBehaviour(heartbeat_interval=1))
    await csms.start()
    process = await start_daemon(write_config(directory, csms.url, version), board)
    try:
        await csms.wait_for_call("Heartbeat", count=2, timeout=20)
        board.set_offset(-THREE_DAYS)  # a user's `date -s` after the sync
        await csms.wait_for_call("Heartbeat", count=4, timeout=10)
        plugged, unplugged = await session(directory, charge_s=1.0)
        start, end = await started_and_ended(csms)
    finally:
        log = await stop_daemon(process)
        await csms.stop()
    return _figure("set back 3 days after the sync", plugged, unplugged, start, end, csms, log)


#: scenario -> the SettingSystemTime events it must produce (the 3-day correction at the boot's first sync).
SCENARIOS = {stepped_after_sync: 1, offline_before_first_sync: 1, set_back_after_sync: 0}


@pytest.mark.reliability
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_clock_faults_full(tmp_path, figures, version):
    results = []
    for n, (scenario, events) in enumerate(SCENARIOS.items()):
        directory = tmp_path / str(n)
        directory.mkdir()
        began = time.monotonic()
        results.append({**await scenario(directory, version), "expected_events": events,
                        "seconds": round(time.monotonic() - began, 1)})
    figures.record("clock_faults", f"full {version}", version=version, scenarios=results)
    for result in results:
        assert abs(result["start_error_s"]) <= GOAL_S and abs(result["end_error_s"]) <= GOAL_S, result
        assert result["setting_system_time_events"] == result["expected_events"] and not result["traceback"], result
