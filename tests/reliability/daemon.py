"""Real ``ocpp-agent run`` processes for the reliability suite.

A ``Daemon`` is the agent as it ships (``python -m agent run --config …``) on the mock HAL, its
log kept in a file (a full pipe must never stall it), driven through the mock HAL control socket
and measured through /proc. ``write_config`` writes the TOML it runs with.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from hal.mock.client import request
from tests.bench.daemon import read_status, status_kib
from tests.harness.toml_text import toml_value

STOP_TIMEOUT_S = 15.0


def _table(name: str, values: dict) -> list[str]:
    lines = [f"[{name}]"]
    lines += [f"{json.dumps(key)} = {toml_value(value)}" for key, value in values.items()]
    return lines


def write_config(directory: Path, url: str, *, version: str = "1.6", station_id: str = "CP-REL",
                 evses: int = 1, csms: dict | None = None, configuration: dict | None = None,
                 variables: dict | None = None, logging: dict | None = None) -> Path:
    """Write ``directory/agent.toml`` for a mock-HAL agent with its state in ``directory/data``.

    ``configuration`` and ``variables`` are the initial 1.6 keys and 2.0.1 variables (both map onto
    the same settings, so the back-off variables apply to either version).
    """
    directory.mkdir(parents=True, exist_ok=True)
    lines = _table("station", {"id": station_id, "data_dir": str(directory / "data"),
                               "vendor": "Acme", "model": "Reliability"})
    lines += _table("csms", {"url": url, "ocpp_version": version, **(csms or {})})
    for evse_id in range(1, evses + 1):
        lines += ["[[evse]]", f"id = {evse_id}"]
    lines += _table("hal", {"backend": "mock"})
    if logging:
        lines += _table("logging", logging)
    lines += _table("ocpp16.configuration", configuration or {})
    lines += _table("ocpp201.variables", variables or {})
    path = directory / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Daemon:
    """One ``ocpp-agent run`` process at a time for a config; stderr appended to ``log_path``."""

    def __init__(self, config_path: Path, *, log_path: Path | None = None):
        self.config_path = Path(config_path)
        self.data_dir = self.config_path.parent / "data"
        self.socket_path = self.data_dir / "mock-hal.sock"
        self.log_path = log_path or self.config_path.parent / "agent.log"
        self.process: asyncio.subprocess.Process | None = None
        self.kills = 0
        self._killed: asyncio.subprocess.Process | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Daemon {self.config_path} {state} kills={self.kills}>"

    @property
    def pid(self) -> int:
        """The running process's id."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process is not None and self.process.returncode is None

    async def start(self, *, umask: int | None = None) -> None:
        """Start the daemon (outside systemd: no notify socket or watchdog inherited), with ``umask`` if given."""
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        with open(self.log_path, "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "agent", "run", "--config", str(self.config_path),
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=None if umask is None else (lambda: os.umask(umask)))

    async def wait_control(self, timeout: float = 15.0) -> None:
        """Wait until the mock HAL control socket answers (the HAL is up; the CSMS may not be)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self.running:
                raise AssertionError(f"agent exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                await self.sim(cmd="state")
                return
            except (ConnectionError, OSError, TimeoutError):
                if loop.time() > deadline:
                    raise AssertionError(f"control socket not up after {timeout} s:\n{self.log_tail()}") from None
                await asyncio.sleep(0.05)

    async def sim(self, **command) -> dict:
        """One mock HAL control request (``cmd="plug", evse=1`` …); the agent's answer."""
        return await asyncio.to_thread(request, self.socket_path, command, timeout=5.0)

    def kill(self) -> None:
        """SIGKILL now: a power cut. Safe to call from a synchronous hook."""
        if self.running and self._killed is not self.process:
            self.process.send_signal(signal.SIGKILL)
            self._killed = self.process  # the exit is collected later: count each process once
            self.kills += 1

    async def wait(self) -> int:
        """Wait for the process to exit; its exit status."""
        return await self.process.wait()

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM and wait; the exit status (None if it had to be killed after ``timeout``)."""
        if not self.running:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
            return None

    def resources(self) -> dict:
        """What /proc says now: resident memory (KiB), threads and open file descriptors."""
        status = read_status(self.pid)
        return {"rss_kib": status_kib(status, "VmRSS"), "threads": int(status["Threads"]),
                "fds": len(os.listdir(f"/proc/{self.pid}/fd"))}

    def log_text(self) -> str:
        """Everything the daemon wrote to stderr so far (the journal, under systemd)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The end of the log, to explain a failure."""
        return "\n".join(self.log_text().splitlines()[-lines:])
