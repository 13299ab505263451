"""`ocpp-agent demo --interactive` starts the dashboard beside its agent, prints its URL, and stops it."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest


@pytest.mark.slow  # ~5 s (a whole demo with its dashboard): `make test-slow`, to keep the default suite < 3 min
def test_interactive_demo_prints_a_working_dashboard_url_and_stops_it():
    proc = subprocess.Popen([sys.executable, "-m", "agent", "demo", "--interactive"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        url = _wait_for_url(lines)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        deadline = time.monotonic() + 10
        while True:  # the demo's agent may still be booting when the URL is printed
            with opener.open(url + "api/status", timeout=5) as answer:
                status = json.loads(answer.read())
            if status["connected"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status["connected"] is True and status["ocpp_version"] == "1.6"
        assert [evse["id"] for evse in status["evses"]] == [1, 2]
        with opener.open(url, timeout=5) as answer:
            assert "EVSE 1" in answer.read().decode()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        reader.join(timeout=5)
    assert proc.returncode == 0, proc.stderr.read()
    port = int(re.search(r":(\d+)/", url)[1])
    with socket.socket() as probe:  # the dashboard went with the demo
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_for_url(lines: list[str], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", line)
            if found:
                return found[1]
        time.sleep(0.05)
    raise AssertionError("no dashboard URL printed:\n" + "".join(lines))
