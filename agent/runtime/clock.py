"""The station clock: system time corrected by the CSMS's currentTime.

A charger may boot without NTP; OCPP timestamps must still be right. We never
set the board's clock (that needs privileges and surprises other services); we
keep an offset learned from BootNotification and Heartbeat responses instead.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

log = logging.getLogger(__name__)


class Clock:
    """Wall-clock time as the CSMS sees it."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def time(self) -> float:
        """Corrected Unix time in seconds."""
        return time.time() + self.offset_s

    def now(self) -> datetime:
        """Corrected current time, timezone-aware UTC."""
        return datetime.fromtimestamp(self.time(), tz=timezone.utc)

    def now_iso(self) -> str:
        """Corrected current time as OCPP writes it: ISO 8601 UTC with milliseconds and Z."""
        return format_iso(self.time())

    def sync(self, current_time: str) -> float:
        """Adopt the CSMS's ``currentTime``; return the correction applied in seconds."""
        try:
            theirs = datetime.fromisoformat(current_time)
        except (TypeError, ValueError):
            log.warning("ignoring unparseable currentTime %r", current_time)
            return 0.0
        if theirs.tzinfo is None:
            theirs = theirs.replace(tzinfo=timezone.utc)
        new_offset = theirs.timestamp() - time.time()
        delta, self.offset_s = new_offset - self.offset_s, new_offset
        if abs(delta) > 2:
            log.info("clock corrected by %+.1f s from the CSMS", delta)
        return delta


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
