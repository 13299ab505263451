"""``ocpp-agent web`` as a subprocess on a free loopback port, for the dashboard's tests.

``web_config_file`` writes a config file for the web process beside an agent's ``data_dir`` (the
web process reads only ``station.data_dir``, ``csms`` for the configuration page, and ``[web]``);
``running_web`` starts the process, waits until it answers and yields its base URL; it is stopped
(SIGTERM) at the end.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.harness.toml_text import write_toml

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0  # a loaded 2-core machine takes seconds to import aiohttp and the config


@dataclass
class WebProcess:
    """A started ``ocpp-agent web``: ``url`` ends with "/" (``url + "api/status"``)."""

    url: str
    process: subprocess.Popen

    def output(self) -> str:
        """What the process printed (stdout and stderr), once it has ended."""
        out, err = self.process.communicate(timeout=10)
        return out + err


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def web_config_file(path: Path, *, data_dir: Path, csms_url: str = "ws://127.0.0.1:9/ocpp",
                    ocpp_version: str = "1.6", web: dict | None = None, csms: dict | None = None,
                    evses: int = 1, extra: dict | None = None) -> Path:
    """A config file naming the agent's ``data_dir`` (as ``tests.harness.agent_config`` makes it: ``tmp_path / "data"``)."""
    return write_toml(path, {
        "station": {"id": "CP1", "data_dir": str(data_dir)},
        "csms": {"url": csms_url, "ocpp_version": ocpp_version, **(csms or {})},
        "evse": [{"id": i} for i in range(1, evses + 1)],
        **({"web": web} if web else {}),
        **(extra or {}),
    })


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "static/style.css", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # 401 with a password: it answers
    except OSError:
        return False


@contextlib.contextmanager
def running_web(config_path: Path, *, listen: str | None = None, env: dict | None = None) -> Iterator[WebProcess]:
    """Start ``ocpp-agent web --config config_path`` on a free loopback port (or ``listen``) and yield it
    once it answers HTTP; SIGTERM at the end. Raises AssertionError with its output if it never answers."""
    listen = listen or f"127.0.0.1:{free_port()}"
    command = [sys.executable, "-m", "agent", "web", "--config", str(config_path), "--listen", listen]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    web = WebProcess(f"http://{listen}/", process)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(web.url):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"ocpp-agent web did not start on {listen}:\n{web.output()}")
            time.sleep(0.1)
        yield web
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
