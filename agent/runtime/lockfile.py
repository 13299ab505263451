"""An exclusive lock on the data directory: one agent (or bench session) at a time.

Two processes driving the same contactor, or appending to the same outbox,
would be a safety and a billing incident. The lock is a kernel flock, so it is
released when the process dies however it dies (kill -9 included).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agent.errors import AgentError


class AlreadyRunning(AgentError, BlockingIOError):
    """Another process holds the data directory (the agent service, or a bench session)."""


class DataDirLock:
    """Holds ``data_dir/agent.lock`` exclusively until released."""

    def __init__(self, data_dir: Path, *, purpose: str):
        self.path = Path(data_dir) / "agent.lock"
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise AlreadyRunning(f"{self.path.parent} is in use by {holder}; stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.purpose} (pid {os.getpid()})\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Give the lock up."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __repr__(self) -> str:
        return f"<DataDirLock {self.path} {'held' if self._fd is not None else 'free'}>"
