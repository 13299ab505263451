"""The figures a reliability run produces, kept per part and written as JSON for the report.

Tests record what they injected and what they counted (``record``); the session writes every
figure to the file named by ``RELIABILITY_FIGURES`` (``make reliability`` sets it) and the report
generator (``tests.reliability.report``) turns that file into ``docs/RELIABILITY.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

FIGURES_ENV = "RELIABILITY_FIGURES"
PARTS = ("power_cuts", "network_faults", "fuzzing", "hardware_faults", "storage_faults", "clock_faults",
         "security", "soak")


class Figures:
    """Figures of one run: ``{part: {name: {...}}}``, plus test outcomes and timing."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self.started = time.time()
        self.parts: dict[str, dict[str, dict]] = {}
        self.outcomes: list[dict] = []
        self._lock = threading.Lock()  # fuzzing records from a worker thread

    def record(self, part: str, name: str, **values) -> None:
        """Record (or replace) figure ``name`` of ``part``; values must be JSON-serialisable."""
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; one of {PARTS}")
        json.dumps(values)  # fail here, in the test that recorded it, not at the end of the run
        with self._lock:
            self.parts.setdefault(part, {})[name] = values
        print(f"\n[{part}] {name}: {json.dumps(values, sort_keys=True)}")

    def outcome(self, nodeid: str, outcome: str, duration_s: float, reason: str = "") -> None:
        """Remember how one test of the suite ended (passed, failed, xfailed, …)."""
        with self._lock:
            self.outcomes.append({"test": nodeid, "outcome": outcome, "duration_s": round(duration_s, 1),
                                  "reason": reason})

    def to_json(self) -> dict:
        """Everything recorded, with the run's start and end time."""
        return {"started": self.started, "finished": time.time(), "environment": environment(),
                "parts": self.parts, "outcomes": self.outcomes}

    def save(self) -> Path | None:
        """Write the JSON file (merging nothing: one file per run); the path, or None if unset."""
        if self.path is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        return self.path


def figures_from_env() -> Figures:
    """A recorder that saves to ``$RELIABILITY_FIGURES`` if set, else only prints."""
    path = os.environ.get(FIGURES_ENV)
    return Figures(Path(path) if path else None)


def _first_line(path: str, prefix: str) -> str:
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(prefix)), "")
    except OSError:
        return ""


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"')
    except OSError:
        return platform.system()


def _revision() -> str:
    """The checked-out commit, and whether the working tree differs from it (read-only git)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def environment() -> dict:
    """Where the run happens: machine, operating system, Python and library versions, agent revision."""
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    memory = _first_line("/proc/meminfo", "MemTotal")
    return {
        "cpu": _first_line("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "memory": memory, "architecture": platform.machine(),
        "os": _os_name(), "kernel": platform.release(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: version(name) for name in ("ocpp", "websockets", "websocket-client", "hypothesis",
                                                     "pytest", "jsonschema")},
        "agent_revision": _revision(), "argv": " ".join(sys.argv[1:]),
    }
