"""The station clock: the CSMS's time, carried forward by the monotonic clock.

A Raspberry Pi has no real-time clock: it boots with a stale time and NTP steps
the board clock minutes later. We never set the board clock (that needs
privileges and surprises other services). Instead:

- Once the CSMS has given its time (BootNotification and Heartbeat answers), the
  station time is that time carried forward by the monotonic clock, so a step of
  the board clock (NTP, ``date -s``) does not move it. Every answer refreshes it.
- Before that, the board clock is all we have. The station time then follows
  the board clock too, but as the monotonic clock plus the board's offset,
  re-read only when the board clock steps (by more than STEP_S). So a stamp made
  before the synchronisation names the monotonic instant it was made at, exactly.
- Records that must reach the CSMS keep that instant next to such a stamp (an
  ``unsynced`` mark, :meth:`Clock.unsynced_mark`). The first synchronisation
  measures the error and hands listeners a :class:`ClockCorrection`, which turns
  every marked stamp of this boot into CSMS time: ``reference + monotonic``.
  The monotonic clock is the kernel's (CLOCK_MONOTONIC), shared by every process
  of one boot, so this also holds for records of an earlier agent process of the
  same boot; across a reboot the error cannot be known and such marks are dropped.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

log = logging.getLogger(__name__)

#: A board clock that moved by more than this against the monotonic clock was stepped, not slewed.
STEP_S = 1.0
#: Board-clock steps remembered before the first synchronisation (the oldest are forgotten first).
MAX_SEGMENTS = 100
#: The key of the mark a record keeps next to a ``timestamp`` made before the first synchronisation.
UNSYNCED = "unsynced"
# Tolerance when finding which board-clock period made a stamp (float rounding of stamp - offset).
_EPSILON_S = 1e-3

_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


def kernel_boot_id() -> str:
    """The kernel's id of this boot; a random id of this process where the kernel has none."""
    try:
        with open(_BOOT_ID_PATH, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return f"process-{uuid.uuid4()}"  # the monotonic clock is then only trusted within this process


@dataclass(frozen=True)
class _Segment:
    """A period before the first synchronisation in which the board clock was not stepped."""

    mono: float  # monotonic instant it began
    offset: float  # station time minus monotonic time during it (the board clock's offset)


@dataclass(frozen=True)
class ClockCorrection:
    """What a synchronisation measured, for rewriting the stamps recorded before it.

    ``reference``: station time = reference + monotonic time, from now on (in this boot);
    ``error_s``: the CSMS's time minus the station time just before this synchronisation.
    """

    boot: str
    reference: float
    error_s: float

    def rewrite(self, value: Any) -> bool:
        """Correct, in place, every marked ``timestamp`` in a JSON-like value; True if it held a mark.

        A mark of this boot gives the exact CSMS time of its stamp; a mark of
        another boot is dropped and its stamp kept, since the error then is unknown.
        """
        changed = False
        if isinstance(value, dict):
            mark = value.pop(UNSYNCED, None)
            if mark is not None:
                changed = True
                if mark.get("boot") == self.boot and "timestamp" in value:
                    value["timestamp"] = self.reference + float(mark["mono"])
            for item in value.values():
                changed = self.rewrite(item) or changed
        elif isinstance(value, list):
            for item in value:
                changed = self.rewrite(item) or changed
        return changed

    def corrected(self, timestamp: float, mark: dict | None) -> float:
        """One stamp with its mark (None: made after a synchronisation) in CSMS time."""
        if mark is None or mark.get("boot") != self.boot:
            return timestamp
        return self.reference + float(mark["mono"])


Listener = Callable[[ClockCorrection], None]


class Clock:
    """Wall-clock time as the CSMS sees it.

    ``wall`` and ``monotonic`` are the board's clocks (injectable for tests);
    ``boot_id`` names the span in which monotonic instants compare (the kernel's boot).
    """

    def __init__(self, *, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 boot_id: str | None = None) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self.boot_id = boot_id or kernel_boot_id()
        self._reference: float | None = None  # station time - monotonic time, once synchronised
        self._segments: list[_Segment] = []
        self._listeners: list[Listener] = []
        # True until every listener has rewritten the marked records (a failed rewrite is retried).
        self._correction_due = True

    # ------------------------------------------------------------ reading

    @property
    def synced(self) -> bool:
        """True once the CSMS has given the time (or a test set :attr:`offset_s`)."""
        return self._reference is not None

    def time(self) -> float:
        """Station time as Unix time in seconds."""
        mono = self._monotonic()
        if self._reference is not None:
            return self._reference + mono
        return mono + self._segment(mono).offset

    def now(self) -> datetime:
        """Station time, timezone-aware UTC."""
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)

    def now_iso(self) -> str:
        """Station time as OCPP writes it: ISO 8601 UTC with milliseconds and Z."""
        return format_iso(self.time())

    @property
    def offset_s(self) -> float:
        """Station time minus board time now; setting it makes the station time the board's plus this."""
        return self.time() - self._wall()

    @offset_s.setter
    def offset_s(self, value: float) -> None:
        self._reference = self._wall() + value - self._monotonic()

    def _segment(self, mono: float) -> _Segment:
        """The current board-clock period; a new one begins when the board clock was stepped."""
        board = self._wall() - mono
        current = self._segments[-1] if self._segments else None
        if current is None or abs(board - current.offset) > STEP_S:
            if current is not None:
                log.info("board clock stepped by %+.1f s before the first synchronisation", board - current.offset)
            current = _Segment(mono, board)
            self._segments = [*self._segments[-(MAX_SEGMENTS - 1):], current]
        return current

    def unsynced_mark(self, timestamp: float) -> dict | None:
        """The mark to keep next to ``timestamp`` (one :meth:`time` returned), or None once synchronised.

        The mark holds the monotonic instant the stamp was made at and the boot
        it belongs to, so the first synchronisation can correct the stamp exactly.
        """
        if self._reference is not None:
            return None
        if not self._segments:
            self.time()
        made_in = self._segments[-1]
        for index in range(len(self._segments) - 1, -1, -1):  # newest first: a stamp is usually fresh
            segment = self._segments[index]
            end = self._segments[index + 1].mono if index + 1 < len(self._segments) else float("inf")
            if segment.mono - _EPSILON_S <= timestamp - segment.offset <= end + _EPSILON_S:
                made_in = segment
                break
        return {"boot": self.boot_id, "mono": timestamp - made_in.offset}

    # ------------------------------------------------------------ synchronising

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(correction)`` at the first synchronisation, to rewrite stamps recorded before it.

        It is called again at later synchronisations only if it raised: a rewrite
        that failed (a full disk) is retried. It runs inside :meth:`sync`, so it
        must not await; exceptions are logged, never passed to the caller.
        """
        self._listeners.append(listener)

    def sync(self, current_time: str) -> float:
        """Adopt the CSMS's ``currentTime``; return the correction applied in seconds."""
        try:
            theirs = datetime.fromisoformat(current_time)
        except (TypeError, ValueError):
            log.warning("ignoring unparseable currentTime %r", current_time)
            return 0.0
        if theirs.tzinfo is None:
            theirs = theirs.replace(tzinfo=timezone.utc)
        mono = self._monotonic()
        before = self._reference + mono if self._reference is not None else mono + self._segment(mono).offset
        delta = theirs.timestamp() - before
        self._reference = theirs.timestamp() - mono
        if abs(delta) > 2:
            log.info("clock corrected by %+.1f s from the CSMS", delta)
        if self._correction_due:
            self._correction_due = not self._notify(ClockCorrection(self.boot_id, self._reference, delta))
            self._segments = []  # no stamp is made on the board clock any more
        return delta

    def _notify(self, correction: ClockCorrection) -> bool:
        """Tell every listener; True if all of them succeeded."""
        ok = True
        for listener in self._listeners:
            try:
                listener(correction)
            except Exception:  # noqa: BLE001 - a failed rewrite must not break the connection
                log.exception("rewriting the stamps recorded before the clock was synchronised failed;"
                              " trying again at the next synchronisation")
                ok = False
        return ok


def format_iso(unix_time: float) -> str:
    """Unix time as ISO 8601 UTC with milliseconds and a Z suffix."""
    stamp = datetime.fromtimestamp(unix_time, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def unix_time(value: str | None) -> float | None:
    """An OCPP dateTime as unix time (None or "" stays None); one without an offset is UTC, as OCPP intends."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
