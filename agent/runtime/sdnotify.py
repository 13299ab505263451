"""sd_notify of our own: a datagram to $NOTIFY_SOCKET, a no-op outside systemd."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 to systemd when it listens."""

    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]  # abstract namespace socket
        self._address = address or None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that asked for notifications."""
        return self._address is not None

    def notify(self, *lines: str) -> None:
        """Send ``KEY=value`` lines in one datagram; failures are logged, never raised."""
        if not self._address:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self._address)
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        """Tell systemd the service is up."""
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        """Show a one-line status in `systemctl status`."""
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """Pet the watchdog."""
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd the service is shutting down."""
        self.notify("STOPPING=1")

    def watchdog_interval_s(self) -> float | None:
        """Half of the WatchdogSec systemd gave us (WATCHDOG_USEC), or None if off."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        try:
            return int(usec) / 2e6
        except ValueError:
            return None

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
