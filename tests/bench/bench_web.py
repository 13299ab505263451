"""Dashboard figures: what `ocpp-agent web` costs, how fast it answers, and what it costs the daemon.

Each benchmark runs the stack as it ships (tests/harness/dashboard.py): the daemon ``ocpp-agent run`` on
the mock HAL connected to the test CSMS, and ``ocpp-agent web`` beside it on loopback.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from agent.runtime.message_log import MessageLog
from tests.bench import daemon
from tests.bench.registry import Figure, benchmark, below
from tests.harness.dashboard import DashboardStack

LOG_FRAMES = 100_000
LOG_REPEATS = 5
LIVE_REPEATS = 5


# ------------------------------------------------------------------ a server-sent events client


class EventStream:
    """A plain-socket reader of ``/events``: every event's arrival time and data, from a thread of its own."""

    def __init__(self, port: int, *, path: str = "/events"):
        self.events: list[tuple[float, str]] = []
        self._changed = threading.Condition()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
        self._thread = threading.Thread(target=self._read, name="sse-client", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        self._sock.settimeout(None)
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            now = time.perf_counter()
            buffer += chunk
            while b"\n\n" in buffer:  # chunked transfer framing lines ride along; data lines are what counts
                block, buffer = buffer.split(b"\n\n", 1)
                data = "".join(line[5:].strip() for line in block.decode(errors="replace").splitlines()
                               if line.startswith("data:"))
                if data:
                    with self._changed:
                        self.events.append((now, data))
                        self._changed.notify_all()

    def wait_for(self, predicate, *, after: int = 0, timeout: float = 5.0) -> float:
        """The arrival time of the first event from index ``after`` on whose data satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for arrived, data in self.events[after:]:
                    if predicate(data):
                        return arrived
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no matching event")
                self._changed.wait(remaining)

    def close(self) -> None:
        """Hang up (the server sees the browser leave)."""
        self._sock.close()


def _daemon_cpu_s(stack: DashboardStack, window_s: float) -> float:
    """CPU the daemon spends (all threads, schedstat precision) over ``window_s`` from now."""
    pid = stack.daemon.pid
    before = daemon.sample_threads(pid)
    time.sleep(window_s)
    return sum(t.cpu_s for t in daemon.thread_deltas(before, daemon.sample_threads(pid)))


def _live_html(data: str) -> str:
    """The re-rendered live section a status event carries."""
    return json.loads(data).get("html", "")


@benchmark("web_idle", goal=below(60, "MiB"))
def web_idle(ctx) -> list[Figure]:
    """Web process RSS when idle, and the daemon's idle CPU with the dashboard open vs closed."""
    window_s = max(2.0, ctx.settings.idle_s / 2)
    with tempfile.TemporaryDirectory(prefix="ocpp-bench-web-") as tmp, DashboardStack(Path(tmp)) as stack:
        time.sleep(1.0)  # let the boot's statuses and the first snapshot settle
        closed = _daemon_cpu_s(stack, window_s)
        stream = EventStream(stack.port)
        try:
            stream.wait_for(lambda data: True)
            time.sleep(0.5)
            opened = _daemon_cpu_s(stack, window_s)
        finally:
            stream.close()
        rss = daemon.status_kib(daemon.read_status(stack.web.pid), "VmRSS") / 1024
        hwm = daemon.status_kib(daemon.read_status(stack.web.pid), "VmHWM") / 1024
    return [
        Figure("web VmRSS idle", rss, "MiB"),
        Figure("web VmHWM (peak)", hwm, "MiB", goal=None),
        Figure("daemon CPU, dashboard closed", closed * 1000, "ms", goal=None, note=f"{window_s:g} s window"),
        Figure("daemon CPU, dashboard open (SSE client)", opened * 1000, "ms", goal=None,
               note=f"{window_s:g} s window"),
        Figure("daemon CPU difference (open - closed)", (opened - closed) * 1000, "ms", goal=below(20, "ms"),
               note="no measurable difference: the status socket only speaks when something changes"),
    ]


def fill_message_log(path: Path, count: int) -> None:
    """``count`` frames in the message log at ``path``: MeterValues CALLs and their replies, over two days."""
    MessageLog(path, max_bytes=1 << 30).close()  # the schema, as the daemon makes it
    now = time.time()
    step = 2 * 86400 / count
    rows = []
    for i in range(count):
        ts = now - 2 * 86400 + i * step
        message_id = f"m{i // 2}"
        if i % 2 == 0:
            frame = json.dumps([2, message_id, "MeterValues", {"connectorId": 1 + i % 2, "meterValue": [
                {"timestamp": "2026-12-07T10:00:00Z", "sampledValue": [{"value": str(i * 10)}]}]}])
            rows.append((ts, "out", "MeterValues", message_id, 2, frame, len(frame)))
        else:
            frame = json.dumps([3, message_id, {}])
            rows.append((ts, "in", "MeterValues", message_id, 3, frame, len(frame)))
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO frames (ts, direction, action, message_id, message_type, frame, size)"
                         " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _timed_get(stack: DashboardStack, path: str) -> float:
    started = time.perf_counter()
    status, _, body = stack.http_get(path, timeout=30)
    elapsed = time.perf_counter() - started
    assert status == 200 and body, path
    return elapsed


@benchmark("web_log_100k", goal=below(200, "ms"))
def web_log_100k(ctx) -> list[Figure]:
    """`/log` and `/api/log` first page with 100,000 frames in the message log."""
    with tempfile.TemporaryDirectory(prefix="ocpp-bench-web-") as tmp:
        directory = Path(tmp)
        (directory / "data").mkdir()
        fill_message_log(directory / "data" / "messages.sqlite", LOG_FRAMES)
        with DashboardStack(directory, message_log_max_MiB=256) as stack:
            frames = json.loads(stack.http_get("/api/log?limit=1", timeout=30)[2])["frames"]
            assert frames, "the log is empty"
            figures = []
            for path in ("/log", "/api/log", "/api/log?action=BootNotification", "/api/log?q=99990"):
                times = [_timed_get(stack, path) * 1000 for _ in range(LOG_REPEATS)]
                figures.append(Figure(f"GET {path} median", statistics.median(times), "ms",
                                      goal=None if "?" in path else below(200, "ms"),
                                      note=f"first {times[0]:.0f} ms, max {max(times):.0f} ms"))
    return figures


@benchmark("web_live_latency", goal=below(1, "s"))
def web_live_latency(ctx) -> list[Figure]:
    """From a mock-HAL change (cable in / out) to the status event, and to the text in a real browser."""
    from tests.harness.browser import Browser, available

    with tempfile.TemporaryDirectory(prefix="ocpp-bench-web-") as tmp, DashboardStack(Path(tmp)) as stack:
        stream = EventStream(stack.port)
        browser = None if available() else Browser()
        sse, shown = [], []
        try:
            stream.wait_for(lambda data: True)
            if browser:
                browser.get(stack.base_url + "/")
                browser.wait_for_text("EVSE 1")
            for i in range(LIVE_REPEATS):
                for command, status in (("plug", "Preparing"), ("unplug", "Available")):
                    seen = len(stream.events)
                    started = time.perf_counter()
                    stack.sim(command, "1")
                    sse.append(stream.wait_for(lambda data, s=status: f">{s}<" in _live_html(data), after=seen)
                               - started)
                    if browser:
                        browser.wait_for(lambda b, s=status: b.term("EVSE 1", "Status") == s, interval=0.01)
                        shown.append(time.perf_counter() - started)
        finally:
            stream.close()
            if browser:
                browser.quit()
    figures = [Figure("HAL change -> SSE event, median", statistics.median(sse), "s", note=f"max {max(sse):.3f} s"),
               Figure("HAL change -> SSE event, max", max(sse), "s", goal=None)]
    if shown:
        figures.append(Figure("HAL change -> text in chromium, median", statistics.median(shown), "s",
                              note=f"max {max(shown):.3f} s, polled every 10 ms"))
    return figures
