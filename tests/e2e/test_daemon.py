"""End to end: the real `ocpp-agent run` process, a real CSMS, systemd's notify protocol."""

import asyncio
import os
import signal
import socket
import sys
import textwrap

import pytest

from agent.testcsms.server import CsmsBehaviour, CsmsSimulator

pytestmark = pytest.mark.csms(heartbeat_interval=1)  # the watchdog test waits for a heartbeat


class NotifySocket:
    """A stand-in for systemd's notification socket."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def wait_for(self, line: str, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(line in m.split("\n") for m in self.messages):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{line} not received; got {self.messages}")
            data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), remaining)
            self.messages.append(data.decode())

    def close(self):
        self.sock.close()


def write_config(tmp_path, url, *, extra=""):
    path = tmp_path / "agent.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [station]
            id = "CP-E2E"
            data_dir = "{tmp_path / 'data'}"
            vendor = "Acme"
            model = "E2E"
            [csms]
            url = "{url}"
            [[evse]]
            id = 1
            [[evse]]
            id = 2
            [hal]
            backend = "mock"
            """
        )
        + extra
    )
    return path


async def start_agent(config_path, notify: NotifySocket | None, *, env_extra=None):
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    if notify is not None:
        env["NOTIFY_SOCKET"] = notify.path
        env["WATCHDOG_USEC"] = "1000000"  # pet every 0.5 s so the test sees WATCHDOG=1
    env.update(env_extra or {})
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "run", "--config", str(config_path),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def test_daemon_ready_boot_watchdog_and_clean_sigterm(tmp_path, csms):
    notify = NotifySocket(tmp_path / "notify")
    process = await start_agent(write_config(tmp_path, csms.url), notify)
    try:
        await notify.wait_for("READY=1")
        boot = (await csms.wait_for_call("BootNotification", timeout=10))[0]
        assert boot.station_id == "CP-E2E"
        assert boot.payload["chargePointVendor"] == "Acme"
        await csms.wait_for_call("Heartbeat", timeout=5)
        await notify.wait_for("WATCHDOG=1", timeout=5)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        await notify.wait_for("STOPPING=1", timeout=2)
        stderr = (await process.stderr.read()).decode()
        assert "outputs are safe" in stderr
    finally:
        if process.returncode is None:
            process.kill()
        notify.close()


async def test_daemon_sighup_reload_keeps_running_on_bad_config(tmp_path, csms):
    config_path = write_config(tmp_path, csms.url)
    process = await start_agent(config_path, None)
    try:
        await csms.wait_for_call("BootNotification", timeout=10)
        config_path.write_text(config_path.read_text() + "\n[bogus]\n")
        process.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert process.returncode is None
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        stderr = (await process.stderr.read()).decode()
        assert "reload refused" in stderr and "bogus: unknown key" in stderr
    finally:
        if process.returncode is None:
            process.kill()


PI_DEVICES = """
[evse.gpio]
contactor = 17
contactor_feedback = 27
pilot_plug = 5
pilot_charge = 6
[evse.meter]
driver = "modbus"
port = "/dev/null"
[hal.rfid]
driver = "rdm6300"
port = "/dev/null"
"""


async def test_daemon_start_up_error_exits_1_and_touches_nothing(tmp_path, csms):
    # RPi.GPIO is not installed on a desktop: the agent must say so and exit 1, not fall back to the mock.
    text = write_config(tmp_path, csms.url).read_text()
    text = text.replace("[[evse]]\nid = 2\n", "").replace('backend = "mock"', 'backend = "raspberry-pi"')
    text = text.replace("[hal]", PI_DEVICES.strip() + "\n[hal]", 1)
    (tmp_path / "pi.toml").write_text(text)
    process = await start_agent(tmp_path / "pi.toml", None)
    assert await asyncio.wait_for(process.wait(), 20) == 1
    stderr = (await process.stderr.read()).decode()
    assert "start-up failed" in stderr and "RPi.GPIO" in stderr
    assert not csms.received


async def test_daemon_survives_garbage_boot_response(tmp_path, csms):
    replies = []

    def garbage(station_id, text):
        if '"BootNotification"' in text and not replies:
            replies.append(text)
            message_id = text.split('"')[1]
            return f'[3,"{message_id}",{{"status":"Maybe","interval":"soon"}}]'
        return None

    csms.behaviour.frame_hook = garbage
    fast_retry = '[ocpp201.variables]\n"OCPPCommCtrlr.RetryBackOffWaitMinimum" = 1\n"OCPPCommCtrlr.RetryBackOffRandomRange" = 0\n'
    config_path = write_config(tmp_path, csms.url, extra=fast_retry)
    process = await start_agent(config_path, None)
    try:
        # The garbage answer is hooked away; the agent retries after its back-off and is accepted.
        await csms.wait_for(lambda: replies, timeout=10)
        await csms.wait_for_call("BootNotification", timeout=20)
        assert process.returncode is None
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert "BootNotification failed" in (await process.stderr.read()).decode()
    finally:
        if process.returncode is None:
            process.kill()


async def test_daemon_second_agent_on_same_data_dir_is_refused(tmp_path, csms):
    config_path = write_config(tmp_path, csms.url)
    first = await start_agent(config_path, None)
    try:
        await csms.wait_for_call("BootNotification", timeout=10)
        second = await start_agent(config_path, None)
        assert await asyncio.wait_for(second.wait(), 20) == 1
        assert "is in use by ocpp-agent run" in (await second.stderr.read()).decode()
        assert first.returncode is None
    finally:
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), 10) == 0


async def test_daemon_sighup_applies_new_csms_url_and_sigusr1_dumps_tasks(tmp_path, csms):
    other = CsmsSimulator(behaviour=CsmsBehaviour(heartbeat_interval=30))
    await other.start()
    config_path = write_config(tmp_path, csms.url)
    process = await start_agent(config_path, None)
    try:
        await csms.wait_for_call("BootNotification", timeout=10)
        config_path.write_text(config_path.read_text().replace(csms.url, other.url))
        process.send_signal(signal.SIGHUP)
        await other.wait_for_call("BootNotification", timeout=10)
        process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        stderr = (await process.stderr.read()).decode()
        assert "CSMS settings changed; reconnecting" in stderr
        assert "task dump:" in stderr and "--- csms-session" in stderr
    finally:
        if process.returncode is None:
            process.kill()
        await other.stop()


async def test_daemon_soft_reset_ends_the_session_and_restarts(tmp_path, csms):
    from ocpp.v16 import call as call16

    from hal.mock.client import request

    process = await start_agent(write_config(tmp_path, csms.url), None)
    socket_path = str(tmp_path / "data" / "mock-hal.sock")
    try:
        await csms.wait_for_call("StatusNotification", timeout=10)  # registered: taps are authorized online
        for command in ({"cmd": "plug", "evse": 1}, {"cmd": "tap", "id_token": "04A1B2C3"}):
            assert (await asyncio.to_thread(request, socket_path, command))["ok"]
        await csms.wait_for_call("StartTransaction", timeout=5)
        result = await csms.call("CP-E2E", call16.Reset(type="Soft"))
        assert result.status == "Accepted"
        stop = (await csms.wait_for_call("StopTransaction", timeout=5))[0].payload
        assert stop["reason"] == "SoftReset"
        await csms.wait_for_call("BootNotification", count=2, timeout=15)
        assert process.returncode is None  # the same process, re-executed
        assert len(csms.calls("StopTransaction")) == 1  # not ended a second time after the restart
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0


async def run_sim(config_path, *args):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "sim", "--config", str(config_path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode()


async def test_daemon_sim_cli_drives_a_whole_session(tmp_path, csms):
    import json

    config_path = write_config(tmp_path, csms.url)
    process = await start_agent(config_path, None)
    try:
        await csms.wait_for_call("StatusNotification", timeout=10)
        for args in (["plug", "2"], ["tap", "04A1B2C3"], ["ev", "2", "charge"], ["power", "2", "7200"]):
            code, out = await run_sim(config_path, *args)
            assert code == 0 and json.loads(out)["ok"], (args, out)
        await csms.wait_for_call("StartTransaction", timeout=5)
        await asyncio.sleep(0.3)
        code, out = await run_sim(config_path, "state")
        evse2 = json.loads(out)["evses"][1]
        assert evse2["status"] == "Charging" and evse2["transaction_id"] == 1
        assert evse2["contactor_closed"] and evse2["locked"] and evse2["current_limit_A"] == 32.0
        code, out = await run_sim(config_path, "tap", "04A1B2C3")
        assert code == 0
        stop = (await csms.wait_for_call("StopTransaction", timeout=5))[0].payload
        assert stop["transactionId"] == 1 and stop["reason"] == "Local"
        code, out = await run_sim(config_path, "fault", "9", "rcd-trip")
        assert code == 1 and json.loads(out)["ok"] is False
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    code, out = await run_sim(config_path, "state")
    assert code == 2  # nobody listening any more


async def test_daemon_hard_reset_runs_the_reboot_command(tmp_path, csms):
    from ocpp.v16 import call as call16

    marker = tmp_path / "rebooted"
    config_path = write_config(tmp_path, csms.url, extra=f'[system]\nreboot_command = "touch {marker}"\n')
    process = await start_agent(config_path, None)
    try:
        await csms.wait_for_call("StatusNotification", timeout=10)
        assert (await csms.call("CP-E2E", call16.Reset(type="Hard"))).status == "Accepted"
        assert await asyncio.wait_for(process.wait(), 15) == 0
        assert marker.exists()
    finally:
        if process.returncode is None:
            process.kill()
