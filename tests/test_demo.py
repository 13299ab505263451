"""`ocpp-agent demo` runs on its own and exits 0 in well under 30 s."""

import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_demo_boots_heartbeats_and_exits_0(version):
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "agent", "demo", "--ocpp", version],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    out = result.stdout
    assert "station -> CSMS  BootNotification" in out
    assert "BootNotification result" in out and '"Accepted"' in out
    assert out.count("station -> CSMS  Heartbeat") >= 2
    assert "outputs safe" in out
