"""scripts/install.sh and scripts/uninstall.sh, always staged into a DESTDIR under tmp_path.

Every run puts stub `systemctl`, `useradd`, `usermod`, `groupadd`, `chown` first on PATH: they
record the call and fail, so a DESTDIR install can never touch the machine running the tests.
"""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests import REPO_ROOT
from tests.harness.install import INSTALL, STUBBED, UNINSTALL, run

REPO = REPO_ROOT

UNIT = "etc/systemd/system/ocpp-agent.service"
CONF = "etc/ocpp-agent/agent.toml"
README = "opt/ocpp-agent/README.md"


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


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


def ok(result):
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def stub_calls(stubs):
    _, calls = stubs
    return calls.read_text().splitlines() if calls.exists() else []


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_install_writes_every_file(root, stubs):
    result = ok(run(INSTALL, root, stubs))

    unit = root / UNIT
    assert unit.read_text() == (REPO / "systemd" / "ocpp-agent.service").read_text()
    assert mode(unit) == 0o644
    conf = root / CONF
    assert conf.read_text() == (REPO / "config" / "raspberry-pi.toml").read_text()
    assert mode(conf) == 0o640
    assert mode(root / "etc/ocpp-agent") == 0o750
    assert (root / README).read_text() == (REPO / "README.md").read_text()
    assert (root / "var/lib/ocpp-agent").is_dir()
    assert mode(root / "var/lib/ocpp-agent") == 0o750
    link = root / "usr/local/bin/ocpp-agent"
    assert link.is_symlink() and os.readlink(link) == "/opt/ocpp-agent/venv/bin/ocpp-agent"

    # DESTDIR: no user/group creation, no systemctl, no chown -- and it says so.
    assert stub_calls(stubs) == []
    assert "not creating groups" in result.stdout
    assert "skipping systemctl" in result.stdout
    # The hint about the GPIO extras.
    assert "EXTRAS=pi" in result.stdout


def test_installed_config_is_valid(root, stubs):
    ok(run(INSTALL, root, stubs))
    check = subprocess.run(
        [sys.executable, "-m", "agent", "check-config", str(root / CONF)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_existing_config_is_never_overwritten_and_rerun_is_fine(root, stubs):
    conf = root / CONF
    conf.parent.mkdir(parents=True)
    conf.write_text("# my station\n")
    conf.chmod(0o600)

    first = ok(run(INSTALL, root, stubs))
    second = ok(run(INSTALL, root, stubs))

    assert conf.read_text() == "# my station\n"
    assert mode(conf) == 0o600
    assert "keeping existing /etc/ocpp-agent/agent.toml" in first.stdout
    assert "keeping existing /etc/ocpp-agent/agent.toml" in second.stdout
    assert (root / UNIT).is_file() and (root / README).is_file()


def test_uninstall_removes_program_keeps_config_and_data(root, stubs):
    ok(run(INSTALL, root, stubs))
    (root / "opt/ocpp-agent/venv/bin").mkdir(parents=True)  # stands in for the skipped venv
    data = root / "var/lib/ocpp-agent/state.sqlite"
    data.write_bytes(b"transactions")
    (root / CONF).write_text("# edited\n")

    result = ok(run(UNINSTALL, root, stubs))

    assert not (root / UNIT).exists()
    assert not (root / "opt/ocpp-agent").exists()
    assert not (root / "usr/local/bin/ocpp-agent").is_symlink()
    assert (root / CONF).read_text() == "# edited\n"
    assert data.read_bytes() == b"transactions"
    assert "/etc/ocpp-agent" in result.stdout and "/var/lib/ocpp-agent" in result.stdout
    assert "Kept" in result.stdout
    assert stub_calls(stubs) == []

    again = ok(run(UNINSTALL, root, stubs))  # idempotent
    assert "already gone" in again.stdout


def test_refuses_to_install_into_slash_without_root(tmp_path, stubs):
    bin_dir, _ = stubs
    fake_id = bin_dir / "id"
    fake_id.write_text("#!/bin/sh\necho 1000\n")
    fake_id.chmod(0o755)
    for script in (INSTALL, UNINSTALL):
        result = run(script, None, stubs)
        assert result.returncode != 0
        assert "sudo make" in result.stderr
    assert stub_calls(stubs) == []


def test_rejects_unknown_extra(root, stubs):
    result = run(INSTALL, root, stubs, extra_env={"EXTRAS": "pi4"})
    assert result.returncode != 0
    assert "EXTRAS" in result.stderr
    assert not (root / UNIT).exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make missing")
def test_make_install_and_uninstall_targets(root, stubs):
    bin_dir, _ = stubs
    env = {k: v for k, v in os.environ.items() if k not in ("DESTDIR", "EXTRAS", "MAKEFLAGS")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["OCPP_AGENT_SKIP_VENV"] = "1"
    for target in ("install", "uninstall"):
        result = subprocess.run(
            ["make", "-s", "-C", str(REPO), target, f"DESTDIR={root}"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert (root / CONF).is_file()
    assert not (root / UNIT).exists()
    assert stub_calls(stubs) == []


def test_install_creates_a_working_venv(root, stubs):
    """The real pip step: a venv under <root>/opt/ocpp-agent/venv with the agent from the checkout."""
    had_build = (REPO / "build").exists()
    result = ok(run(INSTALL, root, stubs, skip_venv=False, extra_env={"PYTHON": sys.executable}, timeout=240))

    entry = root / "opt/ocpp-agent/venv/bin/ocpp-agent"
    version = subprocess.run([str(entry), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("ocpp-agent ")
    assert "installed" in result.stdout
    # The build ran on a copy: the checkout gained no build/ directory.
    assert (REPO / "build").exists() == had_build
