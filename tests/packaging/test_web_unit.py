"""The dashboard's systemd unit (systemd/ocpp-agent-web.service) and how `make install` ships it."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests import REPO_ROOT
from tests.harness.install import INSTALL, STUBBED, UNINSTALL, run

UNIT = REPO_ROOT / "systemd" / "ocpp-agent-web.service"
INSTALLED = "etc/systemd/system/ocpp-agent-web.service"


def sections():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    return parser


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing (make test installs it)")
def test_web_unit_passes_systemd_analyze_verify(tmp_path):
    entry = Path(sys.executable).with_name("ocpp-agent")
    unit = tmp_path / "ocpp-agent-web.service"
    unit.write_text(UNIT.read_text().replace("/opt/ocpp-agent/venv/bin/ocpp-agent", str(entry)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "ocpp-agent-web.service" in line] == []


def test_web_unit_runs_after_the_daemon_as_its_user_with_read_only_hardening():
    unit = sections()
    assert "ocpp-agent.service" in unit["Unit"]["After"].split()
    service = unit["Service"]
    assert service["ExecStart"].endswith("ocpp-agent web --config /etc/ocpp-agent/agent.toml")
    assert service["User"] == service["Group"] == "ocpp-agent"  # the daemon's data and socket (0660)
    assert service["ProtectSystem"] == "strict" and service["PrivateDevices"] == "yes"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "MemoryDenyWriteExecute"):
        assert service[key] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    assert "SupplementaryGroups" not in service  # no gpio, no serial ports


@pytest.fixture
def stubs(tmp_path):
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir()
    calls = tmp_path / "stub-calls.log"
    for name in STUBBED:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 1\n')
        script.chmod(0o755)
    return bin_dir, calls


def test_install_ships_the_web_unit_disabled_and_uninstall_removes_it(tmp_path, stubs):
    root = tmp_path / "root"
    root.mkdir()
    result = run(INSTALL, root, stubs, extra_env={"EXTRAS": "pi5,web"})
    assert result.returncode == 0, result.stderr
    assert (root / INSTALLED).read_text() == UNIT.read_text()
    assert "ocpp-agent-web.service (the web dashboard; not enabled)" in result.stdout
    assert "systemctl enable --now ocpp-agent-web" in result.stdout  # how to turn it on
    removed = run(UNINSTALL, root, stubs)
    assert removed.returncode == 0, removed.stderr
    assert not (root / INSTALLED).exists()
    refused = run(INSTALL, root, stubs, extra_env={"EXTRAS": "pi,www"})
    assert refused.returncode != 0 and "EXTRAS" in refused.stderr
