"""Boot semantics: a BootNotification after a (re)start of the station only, never after a mere reconnect.

OCPP sends BootNotification when the station has booted; some CSMSes end open sessions or reset their
state on one. So a process boots once: a later connection to the CSMS that accepted that boot resumes
on it (statuses that changed offline are sent, the outbox replays) without a new BootNotification. A
connection whose boot was never accepted (Pending, Rejected, unanswered), or that goes to another CSMS
endpoint, boots again.

Why the process started is decided once, at start, from the state store (2.0.1 BootReasonEnumType):

- a reason set for this start by the previous process: RemoteReset or ScheduledReset (a CSMS Reset),
  FirmwareUpdate (an install that restarted the station);
- else how the previous process ended: a controlled stop (SIGTERM, a restart) is LocalReset; no
  controlled stop while the board kept running (the same kernel boot id: the systemd watchdog killed
  it, or it died) is Watchdog; the board itself restarted (a power cut), or no earlier run, is PowerUp.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.errors import StoreError

log = logging.getLogger("agent.ocpp")

#: A boot reason set for the next start; it stays until a BootNotification carrying it is accepted.
NEXT_REASON_KEY = "ocpp201:boot_reason"  # its name from before 1.6 shared it: a pending reason survives upgrades
#: How the last process ran: {"kernel_boot": the board's boot id or None, "stopped": a controlled stop}.
LAST_RUN_KEY = "boot:last_run"
KERNEL_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

POWER_UP = "PowerUp"
WATCHDOG = "Watchdog"
LOCAL_RESET = "LocalReset"
REMOTE_RESET = "RemoteReset"
SCHEDULED_RESET = "ScheduledReset"
FIRMWARE_UPDATE = "FirmwareUpdate"
TRIGGERED = "Triggered"

_READ = object()  # BootRecord's default: ask the kernel for its boot id


def kernel_boot_id(path: Path = KERNEL_BOOT_ID) -> str | None:
    """The board's boot id (Linux: new at every boot of the kernel), or None where there is none."""
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def start_reason(next_reason: str | None, last_run: dict | None, kernel_boot: str | None) -> str:
    """Why this process started, from what the previous one left (see the module docstring)."""
    if next_reason:
        return next_reason
    if not last_run:
        return POWER_UP
    if last_run.get("stopped"):
        return LOCAL_RESET
    if kernel_boot is not None and last_run.get("kernel_boot") == kernel_boot:
        return WATCHDOG
    return POWER_UP


class BootRecord:
    """This process's boot: why it started, and which CSMS endpoint accepted its BootNotification.

    One per process (the app makes it, the session hands it to each connection's adapter).
    """

    def __init__(self, store, *, kernel_boot: str | None | object = _READ):
        """``kernel_boot``: the board's boot id (read from the kernel unless given; None: unknown)."""
        self._store = store
        self._kernel_boot = kernel_boot_id() if kernel_boot is _READ else kernel_boot
        self.reason = start_reason(self._get(NEXT_REASON_KEY), self._get(LAST_RUN_KEY), self._kernel_boot)
        self.accepted_url: str | None = None  # the endpoint whose CSMS accepted this process's boot
        self._mark(stopped=False)  # until stopped on purpose, this run ends unexpectedly
        log.info("start reason: %s", self.reason)

    def reason_now(self) -> str:
        """The reason to give in a BootNotification: one set since the start (an install found to have
        restarted the station) wins over the one found at start."""
        return self._get(NEXT_REASON_KEY) or self.reason

    def set_next_reason(self, reason: str) -> None:
        """Remember why the station is about to restart (a CSMS Reset, a firmware install)."""
        try:
            self._store.put(NEXT_REASON_KEY, reason)
        except StoreError as exc:  # the next start then says what it finds itself (LocalReset)
            log.warning("boot reason %s not stored: %s", reason, exc)

    def may_resume(self, url: str | None) -> bool:
        """Whether a connection to ``url`` resumes on this process's accepted boot instead of booting."""
        return url is not None and url == self.accepted_url

    def accepted(self, url: str | None) -> None:
        """The CSMS at ``url`` accepted a BootNotification: the reason it carried has been told."""
        self.accepted_url = url
        try:
            self._store.delete(NEXT_REASON_KEY)
        except StoreError as exc:
            log.warning("boot reason not cleared: %s", exc)

    def booting(self) -> None:
        """A connection boots: until this BootNotification is accepted, no connection resumes on an earlier
        one (it may be answered Pending or Rejected, or go to another CSMS and never be answered)."""
        self.accepted_url = None

    def controlled_stop(self) -> None:
        """The agent stops on purpose: the next start is a LocalReset unless a reason is set for it."""
        self._mark(stopped=True)

    def _get(self, key: str):
        try:
            return self._store.get(key)
        except StoreError as exc:
            log.warning("boot record unreadable (%s): %s", key, exc)
            return None

    def _mark(self, *, stopped: bool) -> None:
        try:
            self._store.put(LAST_RUN_KEY, {"kernel_boot": self._kernel_boot, "stopped": stopped})
        except StoreError as exc:
            log.warning("boot record not stored: %s", exc)
