"""The SQLite state store: small persistent state and the durable outbox.

One SQLite file in ``data_dir`` holds everything the agent must not forget
across a power cut: key/value state, the transaction outbox, and (later)
tables of other modules through :attr:`StateStore.connection`.

Durability is the point of this module, so the database runs in WAL mode with
``synchronous=FULL``: a write method returns only after its transaction is on
disk, so the caller may act on it (send the frame, report success) at once.
Every SQLite failure surfaces as :class:`~agent.errors.StoreError` naming the
file, never as a bare ``sqlite3`` exception.

A write the disk refuses (full, read-only, I/O error) is a ``StorageFault`` told to the store's
``health`` (agent.runtime.storage_health): then key/value writes are held in memory (``get`` sees
them), the outbox sends nothing (a record answered but not removed would go twice), and the
health's retry writes what was held once the disk takes it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import StoreError
from agent.runtime.storage_health import STATE_STORE, HeldWrites, StorageFault, StorageHealth, is_write_failure

DIR_MODE = 0o750
FILE_MODE = 0o640  # not world-readable: the store may hold tokens and passwords
BUSY_TIMEOUT_MS = 5000

# Ordered schema migrations; the database's ``PRAGMA user_version`` is the
# number of scripts applied. Append new scripts, never edit applied ones. Each
# runs in its own transaction, so a script must not contain BEGIN/COMMIT.
MIGRATIONS: tuple[str, ...] = (
    # 1: key/value state and the transaction outbox.
    """
    CREATE TABLE kv (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- AUTOINCREMENT: ids must never be reused, even after the outbox drains,
    -- because the id is the sending order.
    CREATE TABLE outbox (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        action     TEXT NOT NULL,
        payload    TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        grp        TEXT
    );
    CREATE INDEX outbox_grp ON outbox (grp) WHERE grp IS NOT NULL;
    """,
    # 2: the authorization cache (agent.core.charging.auth): idTokenInfo the CSMS returned.
    """
    CREATE TABLE auth_cache (
        id_token   TEXT PRIMARY KEY,  -- upper case: idTags compare case-insensitively
        status     TEXT NOT NULL,
        expiry     REAL,
        group_id   TEXT,
        updated_at REAL NOT NULL,
        -- Eviction order. A counter, not updated_at: the clock may jump when the
        -- CSMS corrects it, and the newest entry must never be evicted first.
        seq        INTEGER NOT NULL
    );
    CREATE INDEX auth_cache_seq ON auth_cache (seq);
    """,
    # 3: the transaction journal (agent.core.charging.transactions).
    """
    CREATE TABLE transactions (
        ref             TEXT PRIMARY KEY,  -- ours: the 2.0.1 transactionId and the outbox group
        evse_id         INTEGER NOT NULL,
        id_token        TEXT NOT NULL,
        group_id        TEXT,
        started_at      REAL NOT NULL,
        meter_start_Wh  REAL NOT NULL,
        remote_id       TEXT,              -- the 1.6 transactionId, once the CSMS assigned it
        last_meter_Wh   REAL NOT NULL,
        stopped_at      REAL,
        meter_stop_Wh   REAL,
        stop_reason     TEXT,
        seq_no          INTEGER NOT NULL DEFAULT 0,
        remote_start_id INTEGER
    );
    CREATE INDEX transactions_open ON transactions (evse_id) WHERE stopped_at IS NULL;
    CREATE INDEX transactions_remote ON transactions (remote_id) WHERE remote_id IS NOT NULL;
    """,
    # 4: samples kept for StopTransaction's transactionData (StopTxnSampledData / StopTxnAlignedData).
    """
    CREATE TABLE transaction_data (
        id     INTEGER PRIMARY KEY AUTOINCREMENT,
        ref    TEXT NOT NULL,
        sample TEXT NOT NULL
    );
    CREATE INDEX transaction_data_ref ON transaction_data (ref);
    """,
    # 5: the Local Authorization List (agent.core.charging.local_list); its version is kv "local_list:version".
    """
    CREATE TABLE local_list (
        id_token TEXT PRIMARY KEY,  -- upper case: idTokens compare case-insensitively
        status   TEXT NOT NULL,
        expiry   REAL,
        group_id TEXT
    ) WITHOUT ROWID;
    """,
    # 6: the security log (agent.core.management.security_events): bounded history of security events for GetLog.
    """
    CREATE TABLE security_log (
        -- AUTOINCREMENT: the recording order, never reused, so pruning by seq drops the oldest
        -- even when the clock jumped.
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        timestamp REAL NOT NULL,
        type      TEXT NOT NULL,
        tech_info TEXT
    );
    CREATE INDEX security_log_timestamp ON security_log (timestamp);
    """,
    # 7: the security log keeps the unsynced mark of a timestamp made before the station clock was
    # synchronised (agent.runtime.clock), so the first synchronisation can correct it.
    """
    ALTER TABLE security_log ADD COLUMN unsynced TEXT;  -- JSON {"boot", "mono"}, NULL once in CSMS time
    """,
)


def connect_readonly(path: Path, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Open an existing database without ever writing to it (``mode=ro``; autocommit), waiting for the
    daemon's writers as the daemon's own connections do. For readers in other processes: ``ocpp-agent
    log``, the dashboard."""
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None,
                           check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def prepare_db_path(path: Path) -> None:
    """Create the parent directory (0o750) and the database file (0o640) if missing.

    An existing file loses any world permission bits but is otherwise left as
    the operator set it (it may be stricter than ours).
    """
    parent = path.parent
    if not parent.is_dir():
        parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(parent, DIR_MODE)  # mkdir's mode is filtered by the umask
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_file() and mode & 0o007:
            os.chmod(path, mode & ~0o007)
        return  # anything but a file is left for SQLite to refuse
    # Create the file ourselves so SQLite (which copies the main file's mode
    # to its -wal and -shm files) never creates it world-readable.
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    _fsync_dir(parent)


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable, so the file survives a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dumps(value: Any) -> str:
    """Serialize a stored value compactly; NaN is refused because JSON has none."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class StateStore(HeldWrites):
    """SQLite file in data_dir: WAL journal, synchronous=FULL, versioned schema migrations.

    Use from one thread (the asyncio loop). Do not ``await`` inside
    :meth:`transaction`: another task's write would join the open transaction.
    """

    def __init__(self, path: Path | str, *, stamp_mark: Callable[[float], dict | None] | None = None,
                 health: StorageHealth | None = None) -> None:
        self.path = Path(path)
        #: Where write failures go; its retry writes what was held (agent.runtime.storage_health).
        self.health = health or StorageHealth()
        self._held: dict[tuple, Callable[[], None]] = {}  # writes the disk refused, by what they write
        self._held_kv: dict[str, str | None] = {}  # key -> JSON text (None: deleted) of those, for get()
        self._held_writers: list[Callable[[], None]] = []
        #: How writers mark a timestamp made before the station clock was synchronised
        #: (agent.runtime.clock.Clock.unsynced_mark); None from it: nothing to mark.
        self.stamp_mark: Callable[[float], dict | None] = stamp_mark or (lambda timestamp: None)
        self._depth = 0  # nesting level of transaction()
        self._conn: sqlite3.Connection | None = None
        try:
            prepare_db_path(self.path)
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._configure()
            self._check_integrity()
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise StoreError(f"cannot open state store {self.path}: {exc}") from exc
        except StoreError:
            self.close()
            raise
        self.outbox = Outbox(self)
        self.health.add_retry(STATE_STORE, self.retry_writes)

    def _configure(self) -> None:
        """Set the per-connection pragmas; the first read fails on a non-database file."""
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: in WAL mode, NORMAL may lose the last commits on power loss,
        # and an outbox item acknowledged to the caller must never vanish.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")

    def _check_integrity(self) -> None:
        """Refuse a damaged file at start-up rather than failing mid-transaction."""
        rows = self._conn.execute("PRAGMA quick_check").fetchall()
        if rows != [("ok",)]:
            detail = "; ".join(str(row[0]) for row in rows[:3])
            raise StoreError(f"state store {self.path} is corrupt: {detail}")

    def _migrate(self) -> None:
        """Apply pending MIGRATIONS, each with its version bump in one transaction."""
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise StoreError(
                f"state store {self.path} has schema version {current}, newer than "
                f"this agent supports ({len(MIGRATIONS)})"
            )
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            try:
                self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\n;PRAGMA user_version = {version};\nCOMMIT;"
                )
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(
                    f"state store {self.path}: migration to schema version {version} failed: {exc}"
                ) from exc

    @property
    def schema_version(self) -> int:
        """The number of MIGRATIONS applied to this database."""
        with self._guard():
            return self.connection.execute("PRAGMA user_version").fetchone()[0]

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, in autocommit mode, for other modules' tables.

        Write through :meth:`transaction` so those writes share its durability.
        """
        if self._conn is None:
            raise StoreError(f"state store {self.path} is closed")
        return self._conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn SQLite failures into StoreError that names the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"state store {self.path}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run several writes atomically; commit (durably) on success, roll back on error.

        Nested use is allowed: an inner block becomes a savepoint, so an
        exception caught inside the outer block undoes only the inner writes.
        """
        conn = self.connection
        savepoint = f"sp{self._depth}" if self._depth else None
        try:
            conn.execute(f"SAVEPOINT {savepoint}" if savepoint else "BEGIN IMMEDIATE")
        except sqlite3.Error as exc:  # a read-only file system refuses BEGIN IMMEDIATE already
            raise self._failure(exc, outer=savepoint is None) from exc
        self._depth += 1
        try:
            yield conn
        except BaseException as exc:
            self._depth -= 1
            self._undo(savepoint)
            if savepoint is None and isinstance(exc, sqlite3.Error) and is_write_failure(exc):
                raise self._failure(exc) from exc
            raise
        self._depth -= 1
        self._finish(savepoint)

    def _finish(self, savepoint: str | None) -> None:
        """Release a savepoint or commit; a failed COMMIT is rolled back, not left open."""
        try:
            self.connection.execute(f"RELEASE {savepoint}" if savepoint else "COMMIT")
        except sqlite3.Error as exc:
            self._undo(savepoint)
            raise self._failure(exc, outer=savepoint is None, prefix="commit failed: ") from exc

    def _failure(self, exc: sqlite3.Error, *, outer: bool = True, prefix: str = "") -> StoreError:
        """The error to raise for ``exc``: a StorageFault, told to the health, if the disk refused a write
        (at the outer level: inside, the owner of the transaction finds out)."""
        if outer and is_write_failure(exc):
            self.health.failed(STATE_STORE, exc)
            return StorageFault(f"state store {self.path}: {exc}")
        return StoreError(f"state store {self.path}: {prefix}{exc}")

    def _put_text(self, key: str, text: str | None, *, retrying: bool = False) -> None:
        """Write (None: delete) one key, or hold it (get() sees it)."""
        def write() -> None:
            with self.transaction() as conn:
                if text is None:
                    conn.execute("DELETE FROM kv WHERE key = ?", (key,))
                else:
                    conn.execute("INSERT INTO kv (key, value) VALUES (?, ?)"
                                 " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, text))
        if self.write_or_hold(("kv", key), write, retrying=retrying):
            self._held_kv[key] = text

    def _undo(self, savepoint: str | None) -> None:
        """Roll back to the savepoint, or the whole transaction at the outer level."""
        conn = self.connection
        if not conn.in_transaction:
            return  # SQLite already rolled back (e.g. after an I/O error)
        try:
            if savepoint:
                conn.execute(f"ROLLBACK TO {savepoint}")
                conn.execute(f"RELEASE {savepoint}")
            else:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # the exception being handled says more than this one would

    def get(self, key: str, default: Any = None) -> Any:
        """Return the JSON value stored under ``key``, or ``default``."""
        if key in self._held_kv:
            text = self._held_kv[key]
            return default if text is None else json.loads(text)
        with self._guard():
            row = self.connection.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-serializable value; it is on disk when this returns, unless the disk refuses
        writes: then it is held in memory (``get`` sees it) until the health's retry writes it."""
        self._put_text(key, _dumps(value))

    def delete(self, key: str) -> None:
        """Forget ``key``; deleting a missing key is not an error. Held like :meth:`put`."""
        self._put_text(key, None)

    def close(self) -> None:
        """Close the database (and stop the health's retries); safe to call twice."""
        self.health.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True)
class OutboxItem:
    """One pending message of the outbox.

    ``id`` increases monotonically and is the sending order; ``group`` ties
    items together (e.g. one local transaction) so they can be patched when
    the CSMS assigns an id.
    """

    id: int
    action: str
    payload: dict
    created_at: float
    attempts: int
    group: str | None


_ITEM_COLUMNS = "id, action, payload, created_at, attempts, grp"


def _item(row: tuple) -> OutboxItem:
    """Build an OutboxItem from a row of ``_ITEM_COLUMNS``."""
    item_id, action, payload, created_at, attempts, group = row
    return OutboxItem(item_id, action, json.loads(payload), created_at, attempts, group)


class Outbox:
    """Messages the CSMS must eventually receive.

    Written (and fsynced) before they are sent, removed only after the
    CALLRESULT, replayed in order. Obtain it as ``StateStore.outbox``.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def append(self, action: str, payload: dict, *, group: str | None = None) -> OutboxItem:
        """Queue a message; it is durable when this returns, so it may be sent at once."""
        text = _dumps(payload)
        created_at = time.time()
        with self._store.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO outbox (action, payload, created_at, grp) VALUES (?, ?, ?, ?)",
                (action, text, created_at, group),
            )
        return OutboxItem(cursor.lastrowid, action, json.loads(text), created_at, 0, group)

    def head(self, *, grouped: bool | None = None, skip: Collection[int] = ()) -> OutboxItem | None:
        """The oldest pending item: of any kind, or only those with a group (``grouped`` True: the
        transaction records) or without one (False); items whose id is in ``skip`` are passed over."""
        if self._store.writes_held:
            return None  # nothing goes out that could not be removed once answered (it would go twice)
        sql = f"SELECT {_ITEM_COLUMNS} FROM outbox"
        where = {None: [], True: ["grp IS NOT NULL"], False: ["grp IS NULL"]}[grouped]
        if skip:
            where.append(f"id NOT IN ({','.join('?' * len(skip))})")
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._store._guard():
            row = self._store.connection.execute(sql + " ORDER BY id LIMIT 1", tuple(skip)).fetchone()
        return None if row is None else _item(row)

    def pending(self, *, group: str | None = None) -> list[OutboxItem]:
        """All pending items in sending order; only those of ``group`` if given."""
        sql = f"SELECT {_ITEM_COLUMNS} FROM outbox"
        params: tuple = ()
        if group is not None:
            sql, params = sql + " WHERE grp = ?", (group,)
        with self._store._guard():
            rows = self._store.connection.execute(sql + " ORDER BY id", params).fetchall()
        return [_item(row) for row in rows if ("outbox", row[0]) not in self._store._held]

    def remove(self, item_id: int) -> None:
        """Drop an item after its CALLRESULT; removing it twice is harmless. Held like :meth:`delivered`."""
        self.delivered(item_id)

    def delivered(self, item_id: int, *, apply: Callable[[], None] = lambda: None) -> None:
        """The CSMS answered the item: ``apply`` what it answered and remove the item, in one SQLite
        transaction; if the disk refuses, both wait in memory (the item counts as gone, so it is not sent
        twice) for the store's retry."""
        def write() -> None:
            with self._store.transaction() as conn:
                apply()
                conn.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
        self._store.write_or_hold(("outbox", item_id), write)

    def record_attempt(self, item_id: int) -> int:
        """Count one more sending attempt and return the new count.

        Raises KeyError if the item is not in the outbox.
        """
        with self._store.transaction() as conn:
            conn.execute("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?", (item_id,))
            row = conn.execute("SELECT attempts FROM outbox WHERE id = ?", (item_id,)).fetchone()
            if row is None:
                raise KeyError(item_id)
        return row[0]

    def update_payload(self, item_id: int, payload: dict) -> None:
        """Replace an item's payload (e.g. to insert the transaction id the CSMS assigned).

        Raises KeyError if the item is not in the outbox.
        """
        text = _dumps(payload)
        with self._store.transaction() as conn:
            cursor = conn.execute("UPDATE outbox SET payload = ? WHERE id = ?", (text, item_id))
            if cursor.rowcount == 0:
                raise KeyError(item_id)

    def __len__(self) -> int:
        """The number of pending items (an answered one whose removal is held is not)."""
        held = sum(1 for key in self._store._held if key[0] == "outbox")
        with self._store._guard():
            return self._store.connection.execute("SELECT count(*) FROM outbox").fetchone()[0] - held
