"""The Local Authorization List: idTokens the CSMS installs with SendLocalList (OCPP 1.6 §3.5.1, §5.15;
2.0.1 D01/D02), persisted in the state store.

Version-neutral: the adapters translate their messages into :meth:`LocalAuthorizationList.update`
and word the :class:`UpdateResult` in their version's status. The list is the CSMS's
authority for the tokens it holds; :class:`agent.core.charging.auth.Authorizer` consults it
before the cache (it implements :class:`agent.core.charging.auth.LocalAuthList`).

An update is all or nothing: it is checked first, then applied in one SQLite
transaction, so a refused or failed update leaves the list and its version as
they were.
"""

from __future__ import annotations

import enum
import logging
import sqlite3
from collections.abc import Sequence

from agent.core.charging.auth import select_token_row, token_key
from agent.core.charging.model import AuthorizationStatus, IdTokenInfo
from agent.errors import StoreError

log = logging.getLogger(__name__)

VERSION_KEY = "local_list:version"
"""State-store key of the installed list's version (absent: no list, version 0)."""

Entry = tuple[str, IdTokenInfo | None] | tuple[str, IdTokenInfo | None, str | None]
"""One item of an update: the idToken, its info (None, differential only: remove it) and, in
2.0.1, its type (absent or None: the token in any type, as 1.6 lists it)."""


class UpdateResult(str, enum.Enum):
    """The outcome of an update (1.6 UpdateStatus; 2.0.1 SendLocalListStatus has no NotSupported)."""

    ACCEPTED = "Accepted"
    FAILED = "Failed"
    NOT_SUPPORTED = "NotSupported"
    VERSION_MISMATCH = "VersionMismatch"


class _TooLong(Exception):
    """Raised inside the update's transaction to roll it back: the list would exceed its maximum."""


class LocalAuthorizationList:
    """The Local Authorization List in SQLite, with its version (0 = no list installed).

    Settings read on every call, so a change from the CSMS applies at once:
    ``local_auth_list_enabled`` (a disabled list is neither consulted nor
    updated), ``local_auth_list_max_length`` (entries the list may hold) and
    ``send_local_list_max_length`` (entries one update may carry). Tokens are
    stored upper-cased: idTokens compare case-insensitively. An entry with a type
    is keyed by text and type (2.0.1); see :func:`agent.core.charging.auth.token_key`.
    """

    def __init__(self, store, *, settings) -> None:
        self._store = store
        self._settings = settings

    @property
    def enabled(self) -> bool:
        """LocalAuthListEnabled: False means the list is neither consulted nor updated."""
        return bool(self._settings["local_auth_list_enabled"])

    @property
    def version(self) -> int:
        """The installed list's version; 0 when none was ever installed."""
        return int(self._store.get(VERSION_KEY, 0))

    def lookup(self, id_token: str, token_type: str | None = None) -> IdTokenInfo | None:
        """The entry for ``id_token`` (any case) of ``token_type`` (None: any type), or None if absent
        or the list cannot be read. An entry listed without a type matches every type.

        Expiry is not applied here: the Authorizer judges entries as of now.
        """
        try:
            row = select_token_row(self._store.connection, "local_list", "status, expiry, group_id",
                                   id_token, token_type)
        except (sqlite3.Error, StoreError) as exc:
            # Same degradation as an unreadable cache: the token is treated as not listed.
            log.warning("local authorization list unreadable, treating %s as not listed: %s", id_token, exc)
            return None
        return None if row is None else IdTokenInfo(AuthorizationStatus(row[0]), row[1], row[2])

    def update(self, version: int, entries: Sequence[Entry], *, full: bool) -> UpdateResult:
        """Apply SendLocalList: ``full`` replaces the list, otherwise ``entries`` are added, updated or removed.

        NotSupported while disabled; VersionMismatch for a differential update whose
        version is not above the current one; Failed for an invalid update, one
        that would make the list too long, or a store failure. Only Accepted
        changes anything.
        """
        try:
            refusal = self._refusal(version, entries, full=full)
            if refusal is not None:
                return refusal
            with self._store.transaction() as conn:
                self._apply(conn, entries, full=full)
                self._store.put(VERSION_KEY, version)  # a savepoint inside this transaction
        except _TooLong as exc:
            log.warning("local authorization list update to version %d refused: %s", version, exc)
            return UpdateResult.FAILED
        except (sqlite3.Error, StoreError) as exc:
            log.warning("local authorization list update to version %d failed: %s", version, exc)
            return UpdateResult.FAILED
        log.info("local authorization list: %s update to version %d (%d entries sent)",
                 "full" if full else "differential", version, len(entries))
        return UpdateResult.ACCEPTED

    def _refusal(self, version: int, entries: Sequence[Entry], *, full: bool) -> UpdateResult | None:
        """Why the update cannot be applied, checked before touching the store; None if it may proceed."""
        if not self.enabled:
            return UpdateResult.NOT_SUPPORTED
        if not full and version <= self.version:
            return UpdateResult.VERSION_MISMATCH
        problem = self._invalid(version, entries, full=full)
        if problem is not None:
            log.warning("local authorization list update to version %d refused: %s", version, problem)
            return UpdateResult.FAILED
        return None

    def _invalid(self, version: int, entries: Sequence[Entry], *, full: bool) -> str | None:
        """What makes the update itself unacceptable, or None."""
        if version < 1:
            # 0 is what GetLocalListVersion reports for "no list"; an installed list needs a real version.
            return f"version {version} (must be at least 1)"
        per_message = self._settings["send_local_list_max_length"]
        if len(entries) > per_message:
            return f"{len(entries)} entries in one update (SendLocalListMaxLength is {per_message})"
        keys = [_key(entry) for entry in entries]
        if len(set(keys)) != len(keys):
            return "an idToken is listed more than once"  # 2.0.1 requires unique tokens; order would decide
        if full and any(entry[1] is None for entry in entries):
            return "a full update without idTagInfo for an entry"  # only a differential update removes
        return None

    def _apply(self, conn: sqlite3.Connection, entries: Sequence[Entry], *, full: bool) -> None:
        """Write the entries inside the caller's transaction; raise _TooLong to roll it back."""
        if full:
            conn.execute("DELETE FROM local_list")
        rows = [(_key(entry), entry[1].status.value, entry[1].expiry, entry[1].group_id)
                for entry in entries if entry[1] is not None]
        # executemany in one transaction: a full list of 10,000 entries is a single commit.
        conn.executemany(
            "INSERT INTO local_list (id_token, status, expiry, group_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (id_token) DO UPDATE SET status = excluded.status,"
            " expiry = excluded.expiry, group_id = excluded.group_id",
            rows,
        )
        removed = [(_key(entry),) for entry in entries if entry[1] is None]
        conn.executemany("DELETE FROM local_list WHERE id_token = ?", removed)
        limit = self._settings["local_auth_list_max_length"]
        size = conn.execute("SELECT count(*) FROM local_list").fetchone()[0]
        if size > limit:
            raise _TooLong(f"the list would hold {size} entries (LocalAuthListMaxLength is {limit})")

    def __len__(self) -> int:
        """The number of entries in the list."""
        try:
            return self._store.connection.execute("SELECT count(*) FROM local_list").fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(f"state store {self._store.path}: local authorization list: {exc}") from exc

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<LocalAuthorizationList version={self.version} entries={len(self)} {state}>"


def _key(entry: Entry) -> str:
    """The storage key of an update entry: its text, and its type when it has one."""
    return token_key(entry[0], entry[2] if len(entry) > 2 else None)
