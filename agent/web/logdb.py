"""The dashboard's read-only view of the OCPP message log (``<data_dir>/messages.sqlite``).

The log belongs to the daemon (agent.runtime.message_log); the web process only reads it, through a
``mode=ro`` connection opened per query (cheap for SQLite, and never holding a lock or a stale
snapshot between requests). Frames are already redacted when written, so what is read is what may be
shown. Pages are cut by frame id (``before``/``after`` cursors) rather than OFFSET, so the hundredth
page of a 100,000-frame log costs what the first does, and nothing loads the log into memory.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.commands.log import parse_time
from agent.runtime.log_filters import filter_clause
from agent.runtime.message_log import DIRECTIONS, LoggedFrame
from agent.runtime.store import connect_readonly

LOG_FILE = "messages.sqlite"  # as the daemon names it (agent/app.py)
PAGE_SIZE = 100
MAX_LIMIT = 1000
STREAM_CHUNK = 500  # rows per query while streaming a download
MAX_ACTIONS = 500  # the action list of a log that is not an OCPP one stays bounded
_COLUMNS = "id, ts, direction, action, message_id, message_type, frame"


@dataclass(frozen=True)
class LogFilter:
    """The filters of ``/log`` and ``/api/log``; None (or "") means "any"."""

    since: float | None = None
    until: float | None = None
    action: str | None = None
    direction: str | None = None
    grep: str | None = None


@dataclass(frozen=True)
class LoggedRow:
    """A frame with its row id, the paging cursor."""

    id: int
    frame: LoggedFrame

    def to_json_dict(self) -> dict:
        """A line of ``ocpp-agent log --json`` plus ``id`` (the cursor for ``before``/``after``)."""
        return {"id": self.id, **self.frame.to_json_dict()}


def parse_filter(params, *, now: float | None = None) -> LogFilter:
    """Validate query parameters ``action``, ``direction``, ``q``, ``since``, ``until`` (ValueError says
    which is wrong). Times take what ``ocpp-agent log --since`` takes, and the browser's
    ``datetime-local`` value (``2026-12-07T16:30``, local time)."""
    direction = (params.get("direction") or "").strip() or None
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    current = time.time() if now is None else now
    since, until = (_time_param(params, name, current) for name in ("since", "until"))
    return LogFilter(since=since, until=until, action=(params.get("action") or "").strip() or None,
                     direction=direction, grep=params.get("q") or None)


def parse_int(params, name: str, *, default: int | None, low: int, high: int | None = None) -> int | None:
    """An integer query parameter within [low, high]; ValueError naming it otherwise."""
    text = (params.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bounds}, not {value}")
    return value


def _time_param(params, name: str, now: float) -> float | None:
    text = (params.get(name) or "").strip()
    if not text:
        return None
    try:
        return parse_time(text, now)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


class LogReader:
    """Queries of the message log in ``data_dir``; a missing log reads as empty (the daemon has not run)."""

    def __init__(self, data_dir: Path | str) -> None:
        self.path = Path(data_dir) / LOG_FILE

    def _connect(self) -> sqlite3.Connection | None:
        if not self.path.is_file():
            return None
        return connect_readonly(self.path)

    def page(self, flt: LogFilter, *, before: int | None = None, after: int | None = None,
             limit: int = PAGE_SIZE) -> list[LoggedRow]:
        """Matching frames newest first: at most ``limit``, with id < ``before`` and id > ``after``."""
        where, params = _where(flt, before=before, after=after)
        sql = f"SELECT {_COLUMNS} FROM frames{where} ORDER BY id DESC LIMIT ?"
        return self._rows(sql, [*params, limit])

    def stream(self, flt: LogFilter) -> Iterator[list[LoggedRow]]:
        """Every matching frame, newest first, in chunks (each its own short query): for downloads."""
        before = None
        while True:
            chunk = self.page(flt, before=before, limit=STREAM_CHUNK)
            if not chunk:
                return
            yield chunk
            before = chunk[-1].id

    def actions(self) -> list[str]:
        """The distinct actions in the log, sorted without regard to case.

        Walks the action index one value at a time (a "skip scan": one index seek per action), so it
        costs the number of actions, not the number of frames.
        """
        conn = self._connect()
        if conn is None:
            return []
        found: list[str] = []
        try:
            row = conn.execute("SELECT action FROM frames WHERE action IS NOT NULL "
                               "ORDER BY action COLLATE NOCASE LIMIT 1").fetchone()
            while row is not None and len(found) < MAX_ACTIONS:
                found.append(row[0])
                row = conn.execute("SELECT action FROM frames WHERE action > ? COLLATE NOCASE "
                                   "ORDER BY action COLLATE NOCASE LIMIT 1", (row[0],)).fetchone()
        finally:
            conn.close()
        return found

    def _rows(self, sql: str, params: list) -> list[LoggedRow]:
        conn = self._connect()
        if conn is None:
            return []
        try:
            rows = conn.execute(sql, params).fetchall()
        finally:
            conn.close()
        return [LoggedRow(row[0], LoggedFrame(*row[1:])) for row in rows]


def _where(flt: LogFilter, *, before: int | None, after: int | None) -> tuple[str, list]:
    """The WHERE clause of the filters, the same as ``ocpp-agent log``'s, plus the id cursors."""
    return filter_clause(since=flt.since, until=flt.until, action=flt.action, direction=flt.direction,
                         grep=flt.grep, before_id=before, after_id=after)
