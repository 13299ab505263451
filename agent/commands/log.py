"""The body of ``ocpp-agent log``: query the OCPP message log from a shell.

The command line (argparse) lives in ``agent/cli.py``; this module parses the
time arguments, runs the query and prints either an aligned table for people
or one JSON object per line for scripts.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

from agent.errors import StoreError
from agent.runtime.message_log import LoggedFrame, MessageLog

DEFAULT_WIDTH = 120
MESSAGE_ID_WIDTH = 36  # a UUID, the most common message id
ACTION_WIDTH = 32
TYPE_NAMES = {2: "CALL", 3: "RESULT", 4: "ERROR"}
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)


def parse_time(text: str, now: float | None = None) -> float:
    """Parse an absolute or relative time into a unix time.

    Accepts ISO 8601 (``2026-11-21T10:00:00``, optionally with ``Z`` or an
    offset; without one it is local time) or an age such as ``30s``, ``10m``,
    ``2h``, ``1d``, ``1w`` (that long before ``now``). Raises ValueError
    naming the accepted forms.
    """
    stripped = text.strip()
    match = _RELATIVE.fullmatch(stripped)
    if match:
        current = time.time() if now is None else now
        return current - float(match[1]) * _UNITS[match[2].lower()]
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use ISO 8601 (2026-11-21T10:00:00, optionally "
            f"with Z or +01:00) or an age such as 10m, 2h or 1d"
        ) from None
    return moment.timestamp()  # a naive datetime is taken as local time


def run_log_command(
    *,
    db_path: Path | str,
    since: str | float | None = None,
    until: str | float | None = None,
    action: str | None = None,
    direction: str | None = None,
    grep: str | None = None,
    limit: int | None = 100,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    """Print matching frames newest first; return the exit status.

    ``since``/``until`` are unix times or text for :func:`parse_time`.
    ``out`` defaults to sys.stdout. Exit 0 on success (also with no rows),
    1 if the log is missing or unreadable, 2 for an invalid argument.
    """
    out = sys.stdout if out is None else out
    try:
        filters = _filters(since, until, action, direction, grep, limit)
    except ValueError as exc:
        print(f"ocpp-agent log: {exc}", file=sys.stderr)
        return 2
    path = Path(db_path)
    if not path.is_file():
        print(f"no message log at {path}", file=sys.stderr)
        return 1
    try:
        with MessageLog(path, readonly=True) as message_log:
            frames = message_log.query(**filters)
    except StoreError as exc:
        print(f"ocpp-agent log: {exc}", file=sys.stderr)
        return 1
    _print_frames(frames, as_json=as_json, out=out)
    return 0


def _filters(since, until, action, direction, grep, limit) -> dict:
    """Validate the arguments into MessageLog.query keywords; ValueError says which is bad."""
    if direction is not None and direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    now = time.time()  # one "now" for both ends, so "--since 1h --until 1h" is empty
    return {
        "since": _as_time(since, now, "since"),
        "until": _as_time(until, now, "until"),
        "action": action,
        "direction": direction,
        "grep": grep,
        "limit": limit,
    }


def _as_time(value: str | float | None, now: float, name: str) -> float | None:
    """Turn a --since/--until value into a unix time."""
    if value is None or isinstance(value, (int, float)):
        return value
    try:
        return parse_time(value, now)
    except ValueError as exc:
        raise ValueError(f"--{name}: {exc}") from None


def _print_frames(frames: list[LoggedFrame], *, as_json: bool, out: TextIO) -> None:
    """Write the frames as JSON lines or as a table."""
    if as_json:
        for frame in frames:
            # ASCII escapes: valid JSON for any reader, printable in any locale.
            out.write(json.dumps(frame.to_json_dict()) + "\n")
    elif frames:
        for line in format_table(frames, width=_width(out), unicode=_can_encode(out, "→…")):
            out.write(line + "\n")
    else:
        print("no matching frames", file=sys.stderr)  # stdout stays empty for pipes


def format_table(
    frames: list[LoggedFrame], *, width: int = DEFAULT_WIDTH, unicode: bool = True
) -> list[str]:
    """Lay out frames as aligned lines (header first), each at most ``width`` characters."""
    arrows = {"in": "←", "out": "→"} if unicode else {"in": "<-", "out": "->"}
    ellipsis = "…" if unicode else "..."
    rows = [
        (_local_time(f.timestamp), arrows[f.direction], TYPE_NAMES.get(f.message_type, "?"),
         f.action or "-", f.message_id or "-", _one_line(f.frame))
        for f in frames
    ]
    header = ("TIME", "DIR", "TYPE", "ACTION", "MESSAGE ID", "FRAME")
    widths = (23, 3, 6, _column_width(rows, header, 3, ACTION_WIDTH),
              _column_width(rows, header, 4, MESSAGE_ID_WIDTH))
    return [_table_line(row, widths, width, ellipsis) for row in [header, *rows]]


def _table_line(cells: tuple, widths: tuple, width: int, ellipsis: str) -> str:
    """Pad the fixed columns, then give the frame whatever room is left of ``width``."""
    fixed = [_fit(cell, size, ellipsis).ljust(size) for cell, size in zip(cells[:-1], widths)]
    prefix = "  ".join(fixed) + "  "
    return prefix + _fit(cells[-1], max(width - len(prefix), 10), ellipsis)


def _column_width(rows: list[tuple], header: tuple, column: int, cap: int) -> int:
    """The width that fits the column's header and values, at most ``cap``."""
    return min(max(len(row[column]) for row in [header, *rows]), cap)


def _fit(text: str, width: int, ellipsis: str) -> str:
    """Truncate ``text`` to ``width`` characters, marking the cut."""
    if len(text) <= width:
        return text
    return text[: max(width - len(ellipsis), 0)] + ellipsis


def _one_line(text: str) -> str:
    """Escape line breaks and control characters of an unparseable frame.

    Keeps each frame on one table row, and keeps a peer's escape sequences
    away from the operator's terminal.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _local_time(timestamp: float) -> str:
    """Local wall time with milliseconds, as operators read the charger's clock."""
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="milliseconds")


def _width(out: TextIO) -> int:
    """The terminal's width when printing to one, else DEFAULT_WIDTH."""
    isatty = getattr(out, "isatty", None)
    if isatty is not None and isatty():
        return shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns
    return DEFAULT_WIDTH


def _can_encode(out: TextIO, sample: str) -> bool:
    """True if ``out`` can print ``sample`` (an ASCII-only locale cannot print arrows)."""
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
