"""The real `ocpp-agent run` process for benchmarks, and what /proc says about it.

Benchmarks measure the daemon as it ships: ``sys.executable -m agent run`` with a
TOML config, the mock HAL, a data dir in a temp dir, against a CsmsSimulator on
loopback running in the benchmark's own event loop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

STOP_TIMEOUT_S = 15.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def write_config(directory: Path, csms_url: str, *, station_id: str, ocpp_version: str = "1.6") -> Path:
    """A minimal agent config: two EVSEs on the mock HAL, state under ``directory/data``."""
    path = directory / "agent.toml"
    path.write_text(textwrap.dedent(
        f"""
        [station]
        id = "{station_id}"
        data_dir = "{directory / 'data'}"
        vendor = "Acme"
        model = "Bench"
        [csms]
        url = "{csms_url}"
        ocpp_version = "{ocpp_version}"
        [[evse]]
        id = 1
        [[evse]]
        id = 2
        [hal]
        backend = "mock"
        """
    ))
    return path


async def spawn_agent(config_path: Path, log_path: Path) -> asyncio.subprocess.Process:
    """Start the daemon; its stderr goes to a file so a full pipe can never stall it."""
    env = dict(os.environ)
    # Measure the agent outside systemd: a NOTIFY_SOCKET or WATCHDOG_USEC inherited from the
    # developer's shell would change how often its watchdog loop wakes up.
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    with open(log_path, "wb") as log:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent", "run", "--config", str(config_path),
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )


async def stop_agent(process: asyncio.subprocess.Process) -> int | None:
    """SIGTERM and wait; the exit status, or None if it had to be killed."""
    if process.returncode is not None:
        return process.returncode
    process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        return None


def log_tail(log_path: Path, lines: int = 15) -> str:
    """The end of the agent's log, to explain a failed run."""
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ------------------------------------------------------------------ /proc

def read_status(pid: int, tid: int | None = None) -> dict[str, str]:
    """``/proc/<pid>/status`` (or a thread's) as a dict of raw strings."""
    path = f"/proc/{pid}/task/{tid}/status" if tid else f"/proc/{pid}/status"
    fields = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def status_kib(status: dict[str, str], key: str) -> int:
    """A ``status`` memory field such as ``VmRSS:  12345 kB`` in KiB."""
    return int(status[key].split()[0])


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """utime + stime of a process (all its threads) or of one thread, in seconds."""
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as f:
        # The command name (field 2) may contain spaces; fields after it are fixed.
        after_comm = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(after_comm[11]), int(after_comm[12])  # fields 14 and 15
    return (utime + stime) / _CLOCK_TICKS


def run_time_s(pid: int, tid: int) -> float:
    """A thread's on-CPU time from ``schedstat`` (nanoseconds), finer than stat's clock ticks.

    At 100 ticks/s, utime+stime moves in 10 ms steps: too coarse to tell which of a few
    mostly-sleeping threads spends an idle budget of 60 ms.
    """
    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


@dataclass(frozen=True)
class ThreadSample:
    """One thread's CPU time and voluntary context switches (~ wake-ups from a blocking wait)."""

    tid: int
    name: str
    cpu_s: float
    wakeups: int


def _thread_label(pid: int, tid: int, name: str) -> str:
    # Python (3.11) does not give its threads OS names, so all are "python"; the main one is tid == pid.
    return "main" if tid == pid else f"{name}/{tid}"


def sample_threads(pid: int) -> dict[int, ThreadSample]:
    """Every live thread of ``pid``; threads that vanish while we read are skipped."""
    samples = {}
    for entry in os.listdir(f"/proc/{pid}/task"):
        tid = int(entry)
        try:
            status = read_status(pid, tid)
            samples[tid] = ThreadSample(tid, _thread_label(pid, tid, status["Name"]), run_time_s(pid, tid),
                                        int(status["voluntary_ctxt_switches"]))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return samples


def thread_deltas(before: dict[int, ThreadSample], after: dict[int, ThreadSample]) -> list[ThreadSample]:
    """Per-thread CPU and wake-ups spent between two samples, busiest first."""
    deltas = []
    for tid, end in after.items():
        start = before.get(tid, ThreadSample(tid, end.name, 0.0, 0))
        deltas.append(ThreadSample(tid, end.name, end.cpu_s - start.cpu_s, end.wakeups - start.wakeups))
    return sorted(deltas, key=lambda t: (-t.cpu_s, -t.wakeups))
