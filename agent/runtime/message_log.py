"""The OCPP message log: every frame in and out, redacted, bounded, queryable.

Operators diagnose chargers from this log, so it keeps each frame as sent
(only secrets replaced by ``"***"``) with its direction, action and message
id. It lives in its own SQLite file, apart from the state store, because its
trade-off is the opposite one: ``synchronous=NORMAL`` may lose the last rows
on a power cut, but never makes the agent wait for a disk flush.

It is also the first to give way when ``data_dir`` cannot be written: a write
the disk refuses is reported to the storage health, and from then on, while
any part of ``data_dir`` fails, frames are dropped (counted), never raised
into the transport; the health's retry writes the count once the state store
is writable again, and logging resumes.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from agent.errors import StoreError
from agent.runtime.log_filters import filter_clause
from agent.runtime.storage_health import MESSAGE_LOG, STATE_STORE, StorageFault, StorageHealth, is_write_failure
from agent.runtime.store import BUSY_TIMEOUT_MS, connect_readonly, prepare_db_path

log = logging.getLogger(__name__)

CALL, CALLRESULT, CALLERROR = 2, 3, 4
DIRECTIONS = ("in", "out")
REDACTED = "***"
TRIM_TO = 0.9  # after exceeding max_bytes, trim to this fraction so trims are rare
RECENT_CALLS = 256  # CALL ids remembered to name the action of their replies
WAL_LIMIT_BYTES = 4 * 1024 * 1024  # the WAL file is truncated back to this after checkpoints

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id           INTEGER PRIMARY KEY,
    ts           REAL NOT NULL,
    direction    TEXT NOT NULL,
    action       TEXT,
    message_id   TEXT,
    message_type INTEGER,
    frame        TEXT NOT NULL,
    size         INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_ts ON frames (ts);
CREATE INDEX IF NOT EXISTS frames_action ON frames (action COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS notes (key TEXT PRIMARY KEY, value) WITHOUT ROWID;  -- frames_dropped
"""

# Names of configuration keys, variables and JSON fields whose values are secret.
_SECRET_WORDS = ("password", "passwd", "privatekey", "secret", "authorizationkey")

_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
    r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*\Z)",  # an unterminated block: to the end
    re.DOTALL | re.IGNORECASE,
)


def is_secret_name(name: object) -> bool:
    """True for names like ``basicAuthPassword``, ``AuthorizationKey``, ``privateKey``."""
    if not isinstance(name, str):
        return False
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _scrub_pem(text: str) -> str:
    """Replace every PEM private key block in ``text``."""
    if "PRIVATE KEY" not in text.upper():
        return text  # the common case costs one scan, no regex
    return _PEM_PRIVATE_KEY.sub(REDACTED, text)


def _redact_tree(node: Any) -> tuple[Any, bool]:
    """Return ``node`` with secrets replaced, and whether anything changed."""
    if isinstance(node, str):
        scrubbed = _scrub_pem(node)
        return scrubbed, scrubbed != node
    if isinstance(node, list):
        changed = False
        for index, child in enumerate(node):
            node[index], child_changed = _redact_tree(child)
            changed |= child_changed
        return node, changed
    if isinstance(node, dict):
        return node, _redact_dict(node)
    return node, False


def _redact_dict(obj: dict) -> bool:
    """Redact one JSON object in place: its secret fields, then its children."""
    changed = False
    for key in _secret_fields(obj):
        changed |= _blank(obj, key)
    if _names_secret_variable(obj):
        # 2.0.1 NotifyReport ReportData: {"variable": ..., "variableAttribute": [{"value": ...}]}
        attributes = obj.get("variableAttribute")
        for entry in attributes if isinstance(attributes, list) else [attributes]:
            if isinstance(entry, dict):
                changed |= _blank(entry, "value")
    for key, child in obj.items():
        obj[key], child_changed = _redact_tree(child)
        changed |= child_changed
    return changed


def _blank(obj: dict, key: str) -> bool:
    """Replace ``obj[key]`` by the redaction marker; False if there was nothing to hide."""
    if obj.get(key) is None or obj[key] == REDACTED:
        return False
    obj[key] = REDACTED
    return True


def _secret_fields(obj: dict) -> list[str]:
    """The fields of ``obj`` that hold a secret value, by their name or by OCPP context."""
    fields = [key for key in obj if is_secret_name(key)]
    # 1.6 ChangeConfiguration.req and GetConfiguration.conf configurationKey
    # entries: {"key": "AuthorizationKey", "value": ...}
    if is_secret_name(obj.get("key")) and "value" in obj:
        fields.append("value")
    # 2.0.1 SetVariableData and GetVariableResult entries:
    # {"variable": {"name": "BasicAuthPassword"}, "attributeValue": ...}
    if "attributeValue" in obj and _names_secret_variable(obj):
        fields.append("attributeValue")
    return fields


def _names_secret_variable(obj: dict) -> bool:
    """True if ``obj`` refers to a 2.0.1 variable holding a secret (BasicAuthPassword)."""
    variable = obj.get("variable")
    return isinstance(variable, dict) and is_secret_name(variable.get("name"))


def _may_hold_secret(text: str) -> bool:
    """Cheap pre-check: False only if no secret name or PEM key can be in ``text``.

    A JSON ``\\u`` escape could spell a name in disguise, so it forces the full walk.
    """
    if "\\u" in text:
        return True
    lowered = text.lower()
    return "private key" in lowered or any(word in lowered for word in _SECRET_WORDS)


def _redact_parsed(text: str, parsed: Any) -> str:
    """Redact a frame already parsed as ``parsed``; an unchanged frame keeps its exact text."""
    if not _may_hold_secret(text):
        return text  # most frames: no tree walk
    try:
        redacted, changed = _redact_tree(parsed)
    except RecursionError:  # nested absurdly deep: treat it as text
        return _scrub_pem(text)
    if not changed:
        return text  # operators see the frame byte for byte as it went over the wire
    # ASCII escapes: a "\ud800" escape decodes to a lone surrogate that
    # SQLite could not store as UTF-8 if written back unescaped.
    return json.dumps(redacted, separators=(",", ":"))


def redact(frame_text: str) -> str:
    """Return ``frame_text`` with secret values replaced by ``"***"``, structure kept.

    Covers fields named like password/secret/privateKey/authorizationKey at
    any depth, 1.6 AuthorizationKey configuration values, 2.0.1
    BasicAuthPassword variable values (SetVariables, GetVariables results,
    NotifyReport), and PEM private key blocks in any string. Text that is
    not JSON still has its PEM private keys scrubbed.
    """
    try:
        return _redact_parsed(frame_text, json.loads(frame_text))
    except (ValueError, RecursionError):  # not JSON, or nested absurdly deep
        return _scrub_pem(frame_text)


def _envelope(parsed: Any) -> tuple[int | None, str | None, str | None]:
    """Return (message type, message id, action of a CALL) of an OCPP-J frame.

    Anything that is not a well-formed CALL, CALLRESULT or CALLERROR gives
    (None, None, None).
    """
    if not (isinstance(parsed, list) and len(parsed) >= 3):
        return None, None, None
    message_type, message_id = parsed[0], parsed[1]
    if type(message_type) is not int or message_type not in (CALL, CALLRESULT, CALLERROR):
        return None, None, None
    if not isinstance(message_id, str):
        return None, None, None
    if message_type != CALL:
        return message_type, message_id, None
    if not isinstance(parsed[2], str):
        return None, None, None
    return message_type, message_id, parsed[2]


def _utc_iso(timestamp: float) -> str:
    """Format a unix time as ISO 8601 UTC with milliseconds and a Z suffix."""
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LoggedFrame:
    """One logged frame; ``frame`` is the redacted JSON text.

    ``message_type`` is 2 (CALL), 3 (CALLRESULT), 4 (CALLERROR) or None when
    the frame is not valid OCPP-J; ``action`` of a reply is that of its CALL.
    """

    timestamp: float
    direction: str
    action: str | None
    message_id: str | None
    message_type: int | None
    frame: str

    def to_json_dict(self) -> dict:
        """The frame as a JSON-ready dict; the timestamp is ISO 8601 UTC (ms, Z)."""
        return {
            "timestamp": _utc_iso(self.timestamp),
            "direction": self.direction,
            "action": self.action,
            "message_id": self.message_id,
            "message_type": self.message_type,
            "frame": self.frame,
        }


class MessageLog:
    """Append-only, size-bounded SQLite log of OCPP frames, redacted before writing.

    Thread-safe (the transport thread may log directly). A failed write is
    reported through ``logging`` (and to ``health`` when the disk refused it)
    and dropped: losing a log row must never stop charging. ``readonly=True``
    opens an existing log for queries only.
    """

    def __init__(
        self, path: Path | str, *, max_bytes: int = 16 * 1024 * 1024, readonly: bool = False,
        health: StorageHealth | None = None,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, not {max_bytes}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._calls: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._failing = False
        self.health = health or StorageHealth()
        #: Frames not logged because data_dir could not be written (since start; ``_run_dropped``: lately).
        self.dropped = self._run_dropped = 0
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = self._open_readonly() if readonly else self._open_writable()
            self._check_schema()
            self._total = 0 if readonly else self._stored_bytes()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise StoreError(f"cannot open message log {self.path}: {exc}") from exc
        except StoreError:
            self.close()
            raise
        if not readonly:
            self.health.add_retry(MESSAGE_LOG, self.retry)

    def _open_writable(self) -> sqlite3.Connection:
        """Create or open the log for appending."""
        prepare_db_path(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn = conn  # so close() releases it if a pragma fails
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # no fsync per frame: speed over the last rows
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        conn.executescript(_SCHEMA)
        return conn

    def _open_readonly(self) -> sqlite3.Connection:
        """Open an existing log without ever writing to it (for ``ocpp-agent log``)."""
        self._conn = conn = connect_readonly(self.path, check_same_thread=False)
        return conn

    def _check_schema(self) -> None:
        """Refuse a SQLite file that is not a message log."""
        row = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'frames'"
        ).fetchone()
        if row is None:
            raise StoreError(f"{self.path} is not an OCPP message log")

    def _stored_bytes(self) -> int:
        """Sum the stored frame sizes, once at start-up, so append() never scans."""
        return self._conn.execute("SELECT coalesce(sum(size), 0) FROM frames").fetchone()[0]

    def append(self, direction: str, text: str, *, timestamp: float | None = None) -> None:
        """Log one frame sent ("out") or received ("in"), redacted; never raises on I/O."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        ts = time.time() if timestamp is None else timestamp
        with self._lock:
            row = (ts, direction, *self._describe(direction, text))
            if self.health.failing():  # data_dir refuses writes: the log gives way until the retry
                self.dropped, self._run_dropped = self.dropped + 1, self._run_dropped + 1
                return
            try:
                self._insert(row)
            except (sqlite3.Error, UnicodeError, StoreError) as exc:
                self._report_failure(exc)
                return
            self._failing = False
            if self._run_dropped:
                log.warning("message log %s: logging again; %d frames were not logged", self.path, self._run_dropped)
                self._run_dropped = 0

    def _describe(self, direction: str, text: str) -> tuple:
        """Return (action, message id, message type, redacted frame) of a frame."""
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            return None, None, None, _scrub_pem(text)
        message_type, message_id, action = _envelope(parsed)
        if message_type == CALL:
            self._remember_call(direction, message_id, action)
        elif message_type is not None:
            # A reply travels the other way from its CALL; keying on the
            # direction keeps our ids and the CSMS's ids apart.
            action = self._calls.pop((_opposite(direction), message_id), None)
        return action, message_id, message_type, _redact_parsed(text, parsed)

    def _remember_call(self, direction: str, message_id: str, action: str) -> None:
        """Remember a CALL's action for its reply, forgetting the oldest beyond RECENT_CALLS."""
        key = (direction, message_id)
        self._calls[key] = action
        self._calls.move_to_end(key)
        if len(self._calls) > RECENT_CALLS:
            self._calls.popitem(last=False)

    def _insert(self, row: tuple) -> None:
        """Write one row (autocommit) and trim the oldest rows when over budget."""
        size = len(row[-1].encode("utf-8"))
        self._connection().execute(
            "INSERT INTO frames (ts, direction, action, message_id, message_type, frame, size)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*row, size),
        )
        self._total += size
        if self._total > self.max_bytes:
            self._trim()

    def _trim(self) -> None:
        """Delete the oldest rows until the stored frames fit in TRIM_TO of max_bytes."""
        excess = self._total - int(self.max_bytes * TRIM_TO)
        freed, last_id = 0, None
        cursor = self._conn.execute("SELECT id, size FROM frames ORDER BY id")
        for row_id, size in cursor:  # walks only the rows it is about to delete
            freed, last_id = freed + size, row_id
            if freed >= excess:
                break
        cursor.close()
        if last_id is not None:
            self._conn.execute("DELETE FROM frames WHERE id <= ?", (last_id,))
            self._total -= freed

    def _report_failure(self, exc: Exception) -> None:
        """Warn once per run of failures, so a full disk does not flood the journal."""
        self.dropped, self._run_dropped = self.dropped + 1, self._run_dropped + 1
        if isinstance(exc, sqlite3.Error) and is_write_failure(exc):
            self.health.failed(MESSAGE_LOG, exc)  # frames are dropped until its retry succeeds
        if not self._failing:
            log.warning("message log %s: cannot write a frame: %s", self.path, exc)
        self._failing = True

    def retry(self) -> None:
        """Storage supervision's retry: once the state store writes again, write the count of dropped
        frames (a real write); StorageFault while the disk still refuses (frames keep being dropped)."""
        if self.health.failing(STATE_STORE):
            raise StorageFault("the message log waits until the state store can be written")
        with self._lock:
            try:
                self._connection().execute("INSERT INTO notes (key, value) VALUES ('frames_dropped', ?)"
                                           " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (self.dropped,))
            except sqlite3.Error as exc:
                raise StorageFault(f"message log {self.path}: {exc}") from exc

    def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        action: str | None = None,
        direction: str | None = None,
        grep: str | None = None,
        limit: int | None = 100,
    ) -> list[LoggedFrame]:
        """Return logged frames, newest first, matching every filter given.

        ``since``/``until`` are inclusive unix times; ``action`` matches
        without regard to case; ``grep`` is a case-insensitive (ASCII)
        substring of the frame text; ``limit=None`` returns every match.
        "Newest" is arrival order, which stays right if the clock jumped.
        """
        sql, params = _query_sql(since, until, action, direction, grep, limit)
        with self._lock:
            try:
                rows = self._connection().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"message log {self.path}: {exc}") from exc
        return [LoggedFrame(*row) for row in rows]

    def delete_matching(self, text: str, *, also: Callable[[str], bool] | None = None) -> int:
        """Delete the frames containing ``text`` (case-insensitive, as ``grep``) for which ``also(frame)``,
        if given, is true; the number deleted (a customer's data erased on request).

        Deleted rows are overwritten on disk (SQLite ``secure_delete``), not just unlinked.
        """
        with self._lock:
            conn = self._connection()
            try:
                rows = conn.execute("SELECT id, frame, size FROM frames WHERE instr(lower(frame), lower(?)) > 0",
                                    (text,)).fetchall()
                doomed = [(row_id, size) for row_id, frame, size in rows if also is None or also(frame)]
                conn.execute("PRAGMA secure_delete = ON")
                try:
                    conn.execute("BEGIN")
                    conn.executemany("DELETE FROM frames WHERE id = ?", [(row_id,) for row_id, _ in doomed])
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    conn.execute("PRAGMA secure_delete = OFF")  # appends need not pay for it
            except sqlite3.Error as exc:
                raise StoreError(f"message log {self.path}: {exc}") from exc
            self._total -= sum(size for _, size in doomed)
        return len(doomed)

    def _connection(self) -> sqlite3.Connection:
        """The open connection; StoreError once closed."""
        if self._conn is None:
            raise StoreError(f"message log {self.path} is closed")
        return self._conn

    def close(self) -> None:
        """Close the file; safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> MessageLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _opposite(direction: str) -> str:
    """The other direction."""
    return "out" if direction == "in" else "in"


def _query_sql(since, until, action, direction, grep, limit) -> tuple[str, list]:
    """Build the SELECT for MessageLog.query from its filters."""
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, not {limit}")
    where, params = filter_clause(since=since, until=until, action=action, direction=direction, grep=grep)
    sql = "SELECT ts, direction, action, message_id, message_type, frame FROM frames" + where
    sql += " ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params
