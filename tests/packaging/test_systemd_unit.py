"""The systemd unit passes `systemd-analyze verify` and keeps its hardening."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests import REPO_ROOT

UNIT = REPO_ROOT / "systemd" / "ocpp-agent.service"


def unit_settings():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text().replace("DeviceAllow=", "DeviceAllow_="))
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (make test installs it)")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart exists, so point it at this checkout's entry point.
    entry = Path(sys.executable).with_name("ocpp-agent")
    unit = tmp_path / "ocpp-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/ocpp-agent/venv/bin/ocpp-agent", str(entry)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    complaints = [line for line in result.stderr.splitlines() if "ocpp-agent.service" in line]
    assert complaints == []


def test_unit_is_notify_with_watchdog_and_hardening():
    service = unit_settings()["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > 0
    assert service["Restart"] == "on-failure"
    assert set(service["SupplementaryGroups"].split()) == {"gpio", "dialout"}
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert service[key] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"] == "ocpp-agent"
    assert service["ConfigurationDirectory"] == "ocpp-agent"


def test_unit_lets_the_agent_reach_gpio_and_serial():
    text = UNIT.read_text()
    for device in ("char-gpiochip", "char-ttyAMA", "char-ttyUSB"):
        assert f"DeviceAllow={device} rw" in text
    assert "PrivateDevices=yes" not in text  # would hide /dev/gpiochip* and the serial ports
