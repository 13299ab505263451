"""A whole dashboard stack as it ships, for browser tests, the bench and the README's screenshot.

:class:`DashboardStack` runs a test CSMS (in a thread of its own, so synchronous code such as
selenium can drive everything), the real daemon ``ocpp-agent run`` on the mock HAL as a subprocess,
and ``ocpp-agent web`` as another subprocess on a free loopback port. The agent authenticates to the
CSMS with a password (security profile 1): that password is the secret no page may show.

The mock HAL is driven through its control socket, exactly as ``ocpp-agent sim`` does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from base64 import b64encode
from pathlib import Path

from agent.status.client import AgentNotRunning, read_snapshot
from agent.testcsms.server import CsmsBehaviour, CsmsSimulator
from hal.mock.client import parse_sim_args, request

CSMS_PASSWORD = "csms-Secret-4711"  # noqa: S105  (a test secret: it must never show on a page)
STATION_ID = "WEB01"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config_text(*, data_dir: Path, csms_url: str, ocpp_version: str, web_password: str = "",
                sample_s: int = 1, message_log_max_MiB: float = 16.0, meter_poll_s: float = 1.0) -> str:
    """The agent's TOML: two EVSEs on the mock HAL, profile 1 to the CSMS, fast meter values."""
    q = json.dumps  # a JSON string is a valid TOML basic string
    return f"""\
[station]
id = {q(STATION_ID)}
data_dir = {q(str(data_dir))}
vendor = "Acme"
model = "Dashboard"

[csms]
url = {q(csms_url)}
ocpp_version = {q(ocpp_version)}
security_profile = 1
password = {q(CSMS_PASSWORD)}

[[evse]]
id = 1
max_current_A = 32.0
phases = 3
[evse.meter]
poll_interval_s = {meter_poll_s}

[[evse]]
id = 2
max_current_A = 16.0
phases = 1
[evse.meter]
poll_interval_s = {meter_poll_s}

[hal]
backend = "mock"

[logging]
level = "warning"
message_log_max_MiB = {message_log_max_MiB}

[web]
password = {q(web_password)}

[ocpp16.configuration]
MeterValueSampleInterval = {sample_s}
MeterValuesSampledData = "Energy.Active.Import.Register,Power.Active.Import"

[ocpp201.variables]
"SampledDataCtrlr.TxUpdatedInterval" = {sample_s}
"SampledDataCtrlr.TxUpdatedMeasurands" = "Energy.Active.Import.Register,Power.Active.Import"
"OCPPCommCtrlr.RetryBackOffWaitMinimum" = 1
"OCPPCommCtrlr.RetryBackOffRandomRange" = 0
"""


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM (the daemon then sets safe outputs), SIGKILL after 15 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DashboardStack:
    """CSMS + daemon + ``ocpp-agent web``; use as a context manager (everything stops on exit)."""

    def __init__(self, directory: Path, *, ocpp_version: str = "1.6", web_password: str = "",
                 sample_s: int = 1, heartbeat_interval: int = 300, message_log_max_MiB: float = 16.0,
                 meter_poll_s: float = 1.0):
        self.directory = Path(directory)
        self.data_dir = self.directory / "data"
        self.config_path = self.directory / "agent.toml"
        self.ocpp_version = ocpp_version
        self.web_password = web_password
        self.sample_s = sample_s
        self.heartbeat_interval = heartbeat_interval
        self.message_log_max_MiB = message_log_max_MiB
        self.meter_poll_s = meter_poll_s  # shorter: a meter-offline fault is noticed sooner
        self.port = 0
        self.csms: CsmsSimulator | None = None
        self.daemon: subprocess.Popen | None = None
        self.web: subprocess.Popen | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dashboard-csms", daemon=True)

    # ------------------------------------------------------------------ life cycle

    def __enter__(self) -> DashboardStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """CSMS, then the daemon (until it is connected), then the web process (until it answers)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self.csms = self.in_csms_loop(self._start_csms())
        self.config_path.write_text(config_text(
            data_dir=self.data_dir, csms_url=self.csms.url, ocpp_version=self.ocpp_version,
            web_password=self.web_password, sample_s=self.sample_s, message_log_max_MiB=self.message_log_max_MiB,
            meter_poll_s=self.meter_poll_s))
        self.daemon = self._spawn("daemon.log", "run", "--config", str(self.config_path))
        self.wait_for_status(lambda status: status["connected"], what="the agent connected")
        self.start_web()

    def start_web(self) -> None:
        """Start ``ocpp-agent web`` on a free loopback port and wait until it answers HTTP."""
        self.web, self.port = self.spawn_web(self.config_path)

    def spawn_web(self, config_path: Path, *, log_name: str = "web.log") -> tuple[subprocess.Popen, int]:
        """One more ``ocpp-agent web`` on ``config_path`` (e.g. another [web] password, same data dir).

        Returns the process, answering HTTP, and its port; the caller stops it (or :meth:`stop` does,
        for the one :meth:`start_web` started).
        """
        port = free_port()
        process = self._spawn(log_name, "web", "--config", str(config_path), "--listen", f"127.0.0.1:{port}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"ocpp-agent web exited ({process.returncode}):\n{self.log_tail(log_name)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return process, port
            except OSError:
                if time.monotonic() > deadline:
                    process.kill()
                    raise AssertionError(f"ocpp-agent web never listened:\n{self.log_tail(log_name)}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stop the web process, the daemon (SIGTERM, safe outputs) and the CSMS."""
        for process in (self.web, self.daemon):
            if process is not None:
                stop_process(process)
        if self._thread.is_alive():
            if self.csms is not None:
                self.in_csms_loop(self.csms.stop())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _start_csms(self) -> CsmsSimulator:
        simulator = CsmsSimulator(ocpp_version=self.ocpp_version, behaviour=CsmsBehaviour(
            password=CSMS_PASSWORD, heartbeat_interval=self.heartbeat_interval))
        await simulator.start()
        return simulator

    def _spawn(self, log_name: str, *argv: str) -> subprocess.Popen:
        env = dict(os.environ)
        # Not under systemd here; and a developer's proxy must not route loopback traffic elsewhere.
        for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "http_proxy", "https_proxy",
                     "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(name, None)
        with open(self.directory / log_name, "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "agent", *argv], env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    # ------------------------------------------------------------------ driving and observing

    def in_csms_loop(self, coroutine, *, timeout: float = 30.0):
        """Run ``coroutine`` in the CSMS's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def sim(self, *argv: str) -> dict:
        """``ocpp-agent sim ARGV...`` against the daemon's mock HAL; the answer (must be ok)."""
        answer = request(self.data_dir / "mock-hal.sock", parse_sim_args(list(argv)))
        assert answer["ok"], answer
        return answer

    def status(self) -> dict:
        """The daemon's SNAPSHOT from its status socket."""
        return read_snapshot(self.data_dir)

    def wait_for_status(self, predicate, *, timeout: float = START_TIMEOUT_S, what: str = "status"):
        """Poll the status socket until ``predicate(snapshot)``; the snapshot."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            if self.daemon is not None and self.daemon.poll() is not None:
                raise AssertionError(f"the daemon exited ({self.daemon.returncode}):\n{self.log_tail('daemon.log')}")
            try:
                last = self.status()
                if predicate(last):
                    return last
            except AgentNotRunning as exc:
                last = exc
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s; last: {last}\n{self.log_tail('daemon.log')}")
            time.sleep(0.05)

    @property
    def base_url(self) -> str:
        """The dashboard's URL, without credentials."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def credentialed_url(self) -> str:
        """The dashboard's URL with ``admin:<password>@`` (HTTP Basic from the URL, as a browser takes it)."""
        return f"http://admin:{self.web_password}@127.0.0.1:{self.port}"

    def http_get(self, path: str, *, auth: bool | tuple[str, str] = False, port: int | None = None,
                 timeout: float = 5.0):
        """GET ``path``; (status, headers, body bytes). HTTPError for 4xx/5xx (its ``.code``, ``.headers``)."""
        req = urllib.request.Request(f"http://127.0.0.1:{port or self.port}{path}")
        if auth:
            user, password = auth if isinstance(auth, tuple) else ("admin", self.web_password)
            req.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
        with opener.open(req, timeout=timeout) as answer:
            return answer.status, answer.headers, answer.read()

    def log_tail(self, log_name: str, lines: int = 20) -> str:
        """The end of a process's log, to explain a failure."""
        try:
            return "\n".join((self.directory / log_name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"(no {log_name})"
