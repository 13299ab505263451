"""`ocpp-agent demo`: a whole charging session, on its own, in well under 30 s, exit 0.

The full runs are slow-ish (~15 s each, mostly real meter-value intervals), so
one module fixture starts all four at once: 1.6, 2.0.1 and 2.1 into pipes (the
plain line-by-line output, which these tests read) and 1.6 on a pseudo-terminal
(the live panel).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

DEMO = [sys.executable, "-m", "agent", "demo"]
LIMIT_S = 30
# "  2.52s  station → CSMS  Authorize   {...}" (ASCII arrows where the output encoding needs them)
MESSAGE = re.compile(r"^\s*[\d.]+s  station (?P<dir>→|<-|->|←) CSMS  (?P<label>\S+(?: result| error)?)\s+(?P<body>.*)$")


@dataclass
class Run:
    """One finished demo process."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_plain(version: str) -> Run:
    started = time.monotonic()
    result = subprocess.run([*DEMO, "--ocpp", version], capture_output=True, text=True, timeout=90)
    return Run(result.returncode, result.stdout, result.stderr, time.monotonic() - started)


def run_on_pty(version: str) -> Run:
    """Run the demo with stdout on a 100x30 pseudo-terminal; collect everything it drew."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    started = time.monotonic()
    proc = subprocess.Popen([*DEMO, "--ocpp", version], stdout=slave, stderr=subprocess.PIPE,
                            env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=90)
    return Run(proc.returncode, b"".join(chunks).decode(), stderr, time.monotonic() - started)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    with ThreadPoolExecutor(4) as pool:
        futures = {"1.6": pool.submit(run_plain, "1.6"), "2.0.1": pool.submit(run_plain, "2.0.1"),
                   "2.1": pool.submit(run_plain, "2.1"), "tty": pool.submit(run_on_pty, "1.6")}
        return {name: future.result() for name, future in futures.items()}


def messages(out: str) -> list[tuple[bool, str, dict | str]]:
    """Every OCPP message line as (sent by the station, label, payload)."""
    found = []
    for line in out.splitlines():
        m = MESSAGE.match(line)
        if m:
            try:
                body = json.loads(m["body"])
            except ValueError:
                body = m["body"]  # cut short on a very long payload
            found.append((m["dir"] in ("→", "->"), m["label"], body))
    return found


def index_of(found, predicate, after: int = -1) -> int:
    """Position of the first message after ``after`` that matches; fails the test if none does."""
    for i, message in enumerate(found):
        try:
            if i > after and predicate(*message):
                return i
        except (KeyError, TypeError, IndexError):
            continue  # not the shape we look for (another message, or a payload cut short)
    raise AssertionError("expected message not found after position %d" % after)


def test_demo_16_plays_a_whole_session(runs):
    run = runs["1.6"]
    assert run.returncode == 0, run.stderr
    assert run.seconds < LIMIT_S
    found = messages(run.stdout)
    boot = index_of(found, lambda up, label, body: up and label == "BootNotification")
    index_of(found, lambda up, label, body: not up and label == "BootNotification result"
             and body["status"] == "Accepted", boot)
    auth = index_of(found, lambda up, label, body: up and label == "Authorize" and body == {"idTag": "04A1B2C3"}, boot)
    start = index_of(found, lambda up, label, body: up and label == "StartTransaction", auth)
    index_of(found, lambda up, label, body: label == "StatusNotification" and body["status"] == "Charging", start)
    meter = index_of(found, lambda up, label, body: up and label == "MeterValues"
                     and "Power=7400W" in body["meterValue"][0], start)
    limit = index_of(found, lambda up, label, body: not up and label == "SetChargingProfile", meter)
    assert "offered 10 A" in run.stdout.split("SetChargingProfile", 1)[1]  # the limit reached the pilot
    change = index_of(found, lambda up, label, body: not up and label == "ChangeAvailability", limit)
    stop = index_of(found, lambda up, label, body: up and label == "StopTransaction"
                    and body["reason"] == "Local" and body["meterStop"] > 0, change)
    final = [body["status"] for up, label, body in found[stop:] if label == "StatusNotification"]
    assert final == ["Finishing", "Available", "Available"]  # EVSE 1 stops and is unplugged; EVSE 2 back
    assert_final_state(run.stdout)


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])
def test_demo_201_plays_a_whole_session(runs, version):
    run = runs[version]
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"OCPP {version}: embedded CSMS")
    assert run.seconds < LIMIT_S
    found = messages(run.stdout)

    def event(kind, trigger=None):
        return lambda up, label, body: (up and label == "TransactionEvent" and body["eventType"] == kind
                                        and trigger in (None, body["triggerReason"]))

    boot = index_of(found, lambda up, label, body: up and label == "BootNotification")
    auth = index_of(found, lambda up, label, body: up and label == "Authorize"
                    and body["idToken"]["idToken"] == "04A1B2C3", boot)
    start = index_of(found, event("Started", "Authorized"), auth)
    periodic = event("Updated", "MeterValuePeriodic")
    # As in 1.6: a periodic sample shows the EV's 7.4 kW. The first one may carry the meter's last poll
    # from just before the EV drew power (samples use the live reading, at most one poll old).
    meter = index_of(found, lambda up, label, body: periodic(up, label, body)
                     and "Power=7400" in body["meterValue"][0], start)
    change = index_of(found, lambda up, label, body: not up and label == "ChangeAvailability", meter)
    stop = index_of(found, event("Ended", "StopAuthorized"), change)
    assert found[stop][2]["transactionInfo"]["stoppedReason"] == "Local"
    final = [(body["evseId"], body["connectorStatus"]) for up, label, body in found[stop:]
             if label == "StatusNotification"]
    assert final == [(1, "Available"), (2, "Available")]
    assert_final_state(run.stdout)


def test_demo_21_sets_a_tariff_and_shows_the_running_and_final_cost(runs):
    run = runs["2.1"]
    assert run.returncode == 0, run.stderr
    found = messages(run.stdout)
    tariff = index_of(found, lambda up, label, body: not up and label == "SetDefaultTariff"
                      and body["tariff"]["energy"]["prices"] == [{"priceKwh": 0.25}])
    index_of(found, lambda up, label, body: up and label == "SetDefaultTariff result" and body["status"] == "Accepted",
             tariff)
    index_of(found, lambda up, label, body: up and label == "Authorize", tariff)  # before the session
    shown = [Decimal(m[1]) for m in re.finditer(r"display: Cost: EUR (\d+\.\d\d)$", run.stdout, re.M)]
    assert len(shown) >= 2 and shown[-1] > shown[0]  # the station's own running cost, growing while it charges
    total = re.search(r"^Ended event: costDetails total EUR (\d+\.\d\d) incl\. VAT", run.stdout, re.M)
    assert total and Decimal(total[1]) >= shown[-1] > 0


def assert_final_state(out: str) -> None:
    """The last state lines: both EVSEs idle and safe; energy was counted on EVSE 1."""
    evse1 = [line for line in out.splitlines() if "EVSE 1: pilot" in line]
    evse2 = [line for line in out.splitlines() if "EVSE 2: pilot" in line]
    assert any("contactor closed" in line and ("Charging" in line or "Occupied" in line) for line in evse1)
    assert "pilot A, Available, contactor open, unlocked" in evse1[-1]
    assert "pilot A, Available, contactor open, unlocked" in evse2[-1]
    assert float(re.search(r"([\d.]+) Wh", evse1[-1])[1]) > 5  # 7.4 kW for several seconds
    assert out.rstrip().endswith("demo finished: agent stopped, outputs safe")


def test_demo_on_a_terminal_redraws_a_panel_in_place(runs):
    run = runs["tty"]
    assert run.returncode == 0, run.stderr
    assert run.seconds < LIMIT_S
    out = run.stdout
    assert "\x1b[?25l" in out and out.rstrip().endswith("outputs safe") and "\x1b[?25h" in out
    assert re.search(r"\x1b\[\d+F\x1b\[J", out)  # cursor up to the panel's top, clear below
    last_panel = out.rsplit("\x1b[J", 1)[1]
    assert "step 10/10" in last_panel and "last OCPP messages" in last_panel and "display: " in last_panel
    rows = [re.sub(r"\x1b\[[\d;]*m", "", line).split() for line in last_panel.splitlines()]
    evses = {row[0]: row for row in rows if row and row[0] in ("1", "2")}
    assert evses["1"][1:5] == ["A", "Available", "open", "unlocked"]
    assert evses["2"][1:5] == ["A", "Available", "open", "unlocked"]
    widths = [len(re.sub(r"\x1b\[[\d;?]*[a-zA-Z]", "", line)) for line in last_panel.splitlines()]
    assert max(widths) < 100  # never wraps, or the in-place redraw would leave debris


def test_demo_interactive_is_driven_by_sim_until_ctrl_c():
    proc = subprocess.Popen([*DEMO, "--interactive"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        config = wait_for_config_path(lines)
        state = sim(config, "state")
        assert [(e["id"], e["status"], e["transaction_id"]) for e in state["evses"]] == [
            (1, "Available", None), (2, "Available", None)]
        sim(config, "plug", "1")
        sim(config, "tap", "04A1B2C3")
        deadline = time.monotonic() + 5
        while (evse1 := sim(config, "state")["evses"][0])["transaction_id"] is None:
            assert time.monotonic() < deadline, evse1
            time.sleep(0.1)
        assert evse1["status"] == "SuspendedEV" and evse1["locked"] and evse1["pilot"] == "B"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        reader.join(timeout=5)
    assert proc.returncode == 0, proc.stderr.read()
    out = "".join(lines)
    assert "StartTransaction" in out  # the session the sim drove shows in the demo's output
    assert out.rstrip().endswith("demo finished: agent stopped, outputs safe")
    assert not config.exists()  # the temporary data dir is gone


def wait_for_config_path(lines: list[str], timeout: float = 15) -> Path:
    """The config file named in the printed `sim --config PATH ...` hint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            m = re.search(r" sim --config (\S+) ", line)
            if m:
                return Path(m[1])
        time.sleep(0.05)
    raise AssertionError("no sim hint printed:\n" + "".join(lines))


def sim(config: Path, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "agent", "sim", "--config", str(config), *args],
                            capture_output=True, text=True, timeout=15)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["ok"] is True
    return answer


def test_demo_without_websockets_says_so_in_one_line():
    code = "import sys; sys.modules['websockets'] = None; from agent.cli import main; sys.exit(main(['demo']))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "websockets" in result.stderr and "pip install" in result.stderr


def test_demo_start_up_failure_is_one_line_and_exit_1(tmp_path):
    # A temp dir so deep that the mock HAL's Unix socket path cannot be created there.
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    result = subprocess.run(DEMO, capture_output=True, text=True, timeout=30, env={**os.environ, "TMPDIR": str(deep)})
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("ocpp-agent demo:")]
    assert len(errors) == 1 and "socket path" in errors[0], result.stderr


def test_demo_port_trouble_is_one_line_and_exit_1(monkeypatch, capsys):
    from agent.commands import demo
    from agent.testcsms.server import CsmsSimulator

    async def refuse(self, *, port=0):
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(CsmsSimulator, "start", refuse)
    assert demo.run_demo(ocpp_version="1.6") == 1
    err = capsys.readouterr().err
    assert err == "ocpp-agent demo: the embedded CSMS cannot listen on 127.0.0.1: Address already in use\n"


def test_short_payload_folds_meter_values_and_uuids():
    from agent.commands.demo_view import short_payload

    payload = {"eventType": "Updated", "timestamp": "2026-01-01T00:00:00Z",
               "transactionInfo": {"transactionId": "6ac206c3-a363-449f-b576-ccfdbd20387b"},
               "meterValue": [{"timestamp": "x", "sampledValue": [
                   {"value": 12.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
                   {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"},
                   {"value": "10.7", "measurand": "Current.Import", "phase": "L1", "unit": "A"}]}]}
    assert short_payload(payload) == ('{"eventType":"Updated","transactionInfo":{"transactionId":"6ac206c3.."},'
                                      '"meterValue":["Energy=12.5Wh Power=7400W Current.L1=10.7A"]}')


def test_demo_step_that_never_completes_fails_in_one_line_with_outputs_safe(monkeypatch, capsys):
    from agent.commands import demo
    from agent.app import Agent

    monkeypatch.setattr(demo, "STEP_TIMEOUT_S", 0.5)
    monkeypatch.setattr(demo, "PAUSE_S", 0)
    monkeypatch.setattr(demo.Terms, "meter_reports", lambda self, csms: 0)  # no meter values ever arrive
    after_shutdown = []
    shutdown = Agent.shutdown

    async def recording_shutdown(agent):
        during = agent.hal.snapshot()
        await shutdown(agent)
        after_shutdown.append((during, agent.hal.snapshot()))

    monkeypatch.setattr(Agent, "shutdown", recording_shutdown)
    assert demo.run_demo(ocpp_version="1.6") == 1
    captured = capsys.readouterr()
    assert captured.err == ("ocpp-agent demo: step 5 (charging: meter values every 2 s): "
                            "two meter value reports: not reached within 0.5 s\n")
    assert "demo finished" not in captured.out
    (during, after), = after_shutdown
    assert during[0]["contactor_closed"]  # it failed mid-charge...
    assert not any(e["contactor_closed"] for e in after)  # ...and still left the contactors open
