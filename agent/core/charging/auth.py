"""Authorization of idTokens: CSMS, local list, authorization cache and offline policy.

Version-neutral form of OCPP 1.6 §3.5 (Local Authorization & Offline Behaviour)
and §5.2 (Authorize); the 2.0.1 adapter maps its AuthCtrlr/AuthCacheCtrlr
variables onto the same settings. The protocol adapter plugs in the CSMS as
:attr:`Authorizer.online` while it is connected and accepted, and feeds every
idTagInfo the CSMS sends back through :meth:`Authorizer.remember`.

idTags are CiString20 (case-insensitive), so every key used here (cache rows,
local-list lookups, in-flight requests) is upper-cased. The CSMS still receives
the token as it was presented: we normalise what we compare, not what we send.

OCPP 2.0.1 identifies a token by its text AND its type (IdTokenType: ISO14443,
eMAID, Central, ...); 1.6 by its text alone. A token whose type is known is keyed
by both (:func:`token_key`); an entry written without a type (a 1.6 list or cache)
stands for the text in any type, and a lookup without a type (a 1.6 idTag) takes
an entry of any type. So one store serves both versions.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from agent.core.charging.model import AuthorizationStatus, IdToken, IdTokenInfo
from agent.errors import AgentError, StoreError

log = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 1000


class CsmsUnavailable(AgentError, ConnectionError):
    """No answer from the CSMS: offline or timed out."""


class LocalAuthList(Protocol):
    """The Local Authorization List, as the core consults it (filled by SendLocalList).

    ``lookup`` receives the token upper-cased and must compare case-insensitively,
    and matches types as :func:`token_key` describes; it returns None for a token
    that is not in the list. ``enabled`` mirrors LocalAuthListEnabled: a disabled
    list is never consulted.
    """

    enabled: bool

    def lookup(self, id_token: str, token_type: str | None = None) -> IdTokenInfo | None:
        """The list's entry for ``id_token`` (upper case) of ``token_type`` (None: any), or None if absent."""
        ...


class SettingsView(Protocol):
    """The read side of :class:`agent.runtime.settings.Settings` that authorization needs."""

    def __getitem__(self, name: str) -> Any:
        """The live value of setting ``name``."""
        ...


class AuthSource(str, enum.Enum):
    """Where a verdict came from (a str, so it compares equal to its value)."""

    FREE_VEND = "free-vend"
    LOCAL_LIST = "local-list"
    CACHE = "cache"
    CSMS = "csms"
    OFFLINE_UNKNOWN = "offline-unknown"
    OFFLINE_REJECTED = "offline-rejected"

    def __str__(self) -> str:
        return self.value  # logs read "cache", not "AuthSource.CACHE"


@dataclass(frozen=True)
class Decision:
    """The verdict on a presented idToken and where it came from."""

    info: IdTokenInfo
    source: AuthSource

    @property
    def accepted(self) -> bool:
        """True when charging may start (or go on) with this token."""
        return self.info.accepted


def normalize(id_token: str) -> str:
    """The comparison key of an idToken or group id: OCPP compares them case-insensitively."""
    return id_token.upper()


# Between the text and the type in a key: a control character no idToken (printable) contains.
_TYPE_SEPARATOR = "\x1f"


def token_key(id_token: str, token_type: str | None = None) -> str:
    """The storage key of an idToken: its upper-cased text, and its type when known (2.0.1)."""
    text = normalize(id_token)
    return text if token_type is None else f"{text}{_TYPE_SEPARATOR}{token_type}"


def select_token_row(conn, table: str, columns: str, id_token: str, token_type: str | None):
    """The row of ``table`` for a token: of that type, else untyped; with no type given, of any type.

    The exact match wins; keys of one text share a prefix, so a range on the
    primary key finds every type without a scan.
    """
    text = normalize(id_token)
    if token_type is not None:
        return conn.execute(
            f"SELECT {columns} FROM {table} WHERE id_token IN (?, ?) ORDER BY length(id_token) DESC LIMIT 1",
            (token_key(text, token_type), text)).fetchone()
    return conn.execute(
        f"SELECT {columns} FROM {table} WHERE id_token = ? OR (id_token > ? AND id_token < ?)"
        " ORDER BY length(id_token), id_token LIMIT 1",
        (text, text + _TYPE_SEPARATOR, text + chr(ord(_TYPE_SEPARATOR) + 1))).fetchone()


# The keys of one token text in every type: the text itself, and the range the typed keys share.
_ONE_TOKEN = "(id_token = ? OR (id_token > ? AND id_token < ?))"


def _one_token_params(id_token: str) -> tuple[str, str, str]:
    text = normalize(id_token)
    return text, text + _TYPE_SEPARATOR, text + chr(ord(_TYPE_SEPARATOR) + 1)


def effective(info: IdTokenInfo, now: float) -> IdTokenInfo:
    """``info`` as it stands at ``now``: an Accepted entry past its expiry becomes Expired.

    Only Accepted changes: a Blocked or Invalid token whose date has passed is
    still refused, and its original status says more to the driver.
    """
    if info.accepted and info.expiry is not None and info.expiry <= now:
        return IdTokenInfo(AuthorizationStatus.EXPIRED, info.expiry, info.group_id)
    return info


class AuthorizationCache:
    """idTokenInfo the CSMS returned, persisted in SQLite, with expiry and a bounded size.

    When full, the entries written longest ago are evicted first. Reads report
    an Accepted entry whose expiry has passed as Expired (OCPP: cache entries
    expire). Tokens are stored upper-cased.
    """

    def __init__(self, store, *, clock, max_entries: int = DEFAULT_CACHE_SIZE) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self._store = store
        self._clock = clock
        self.max_entries = max_entries

    def get(self, id_token: str, token_type: str | None = None) -> IdTokenInfo | None:
        """The cached info for ``id_token`` of ``token_type`` (None: any) as of now, or None if not cached."""
        with self._reading() as conn:
            row = select_token_row(conn, "auth_cache", "status, expiry, group_id", id_token, token_type)
        if row is None:
            return None
        info = IdTokenInfo(AuthorizationStatus(row[0]), row[1], row[2])
        return effective(info, self._clock.time())

    def put(self, id_token: str, info: IdTokenInfo, token_type: str | None = None) -> None:
        """Add or replace the entry for ``id_token`` (of ``token_type``), evicting the oldest beyond the bound."""
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO auth_cache (id_token, status, expiry, group_id, updated_at, seq)"
                " VALUES (?, ?, ?, ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM auth_cache))"
                " ON CONFLICT (id_token) DO UPDATE SET status = excluded.status,"
                " expiry = excluded.expiry, group_id = excluded.group_id,"
                " updated_at = excluded.updated_at, seq = excluded.seq",
                (token_key(id_token, token_type), info.status.value, info.expiry, info.group_id, self._clock.time()),
            )
            # Everything older than the max_entries newest rows goes, in one statement.
            conn.execute(
                "DELETE FROM auth_cache WHERE seq <="
                " (SELECT seq FROM auth_cache ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (self.max_entries,),
            )

    def entries_for(self, id_token: str) -> list[tuple[str | None, IdTokenInfo]]:
        """Every entry of ``id_token`` (any case), whatever its type: (type or None, info as of now)."""
        with self._reading() as conn:
            rows = conn.execute(f"SELECT id_token, status, expiry, group_id FROM auth_cache WHERE {_ONE_TOKEN}"
                                " ORDER BY id_token", _one_token_params(id_token)).fetchall()
        now = self._clock.time()
        return [(key.partition(_TYPE_SEPARATOR)[2] or None,
                 effective(IdTokenInfo(AuthorizationStatus(status), expiry, group), now))
                for key, status, expiry, group in rows]

    def forget(self, id_token: str) -> int:
        """Delete every entry of ``id_token`` (any case, any type); the number deleted."""
        with self._store.transaction() as conn:
            return conn.execute(f"DELETE FROM auth_cache WHERE {_ONE_TOKEN}", _one_token_params(id_token)).rowcount

    def clear(self) -> None:
        """Forget every entry."""
        with self._store.transaction() as conn:
            conn.execute("DELETE FROM auth_cache")

    def __len__(self) -> int:
        """The number of cached tokens."""
        with self._reading() as conn:
            return conn.execute("SELECT count(*) FROM auth_cache").fetchone()[0]

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The store's connection for a read; SQLite failures become StoreError, as for writes."""
        try:
            yield self._store.connection
        except sqlite3.Error as exc:
            raise StoreError(f"state store {self._store.path}: authorization cache: {exc}") from exc

    def __repr__(self) -> str:
        return f"<AuthorizationCache entries={len(self)} max={self.max_entries}>"


# Called with an IdToken: a str (all a 1.6 Authorize needs) whose ``type`` a 2.0.1 Authorize sends.
OnlineAuthorize = Callable[[str], Awaitable[IdTokenInfo]]

# "No answer" in any form sends us to the offline rules. The adapter should raise
# CsmsUnavailable; the builtins catch a CallTimeout or CallAborted it forgot to wrap.
_NO_ANSWER = (CsmsUnavailable, TimeoutError, ConnectionError)

_ACCEPTED = IdTokenInfo(AuthorizationStatus.ACCEPTED)
_INVALID = IdTokenInfo(AuthorizationStatus.INVALID)


class Authorizer:
    """Decides whether an idToken may charge: free vend, local list, cache, CSMS, offline rules.

    Settings are read on every call, so a change from the CSMS applies at once:
    ``authorization_cache_enabled``, ``local_authorize_offline``,
    ``local_pre_authorize`` and ``allow_offline_tx_for_unknown_id``.
    ``online`` is set by the protocol adapter while the CSMS is reachable and
    has accepted us, and reset to None when it is not.
    """

    def __init__(
        self,
        *,
        settings: SettingsView,
        cache: AuthorizationCache,
        clock,
        online: OnlineAuthorize | None = None,
        local_list: LocalAuthList | None = None,
        free_vend: bool = False,
    ) -> None:
        self._settings = settings
        self._cache = cache
        self._clock = clock
        self.online = online
        self.local_list = local_list
        self.free_vend = free_vend
        # One Authorize request per token at a time; later callers share its answer.
        self._inflight: dict[str, asyncio.Future[IdTokenInfo]] = {}

    async def authorize(self, id_token: str, *, token_type: str | None = None) -> Decision:
        """The verdict on ``id_token`` presented as ``token_type`` (OCPP 1.6 §3.5, §5.2; 2.0.1 C01, C10-C12).

        Exceptions of ``online`` other than "no answer" (e.g. a CALLERROR the
        adapter chose not to translate) propagate to the caller.
        """
        if self.free_vend:
            return Decision(_ACCEPTED, AuthSource.FREE_VEND)
        token = IdToken(id_token, token_type)
        online = self.online
        if online is None:
            return self._offline(token)
        if self._settings["local_pre_authorize"]:
            known = self._known(token)
            if known is not None and known.accepted:
                return known  # LocalPreAuthorize: start at once, no round trip
        try:
            return Decision(await self._ask_csms(online, token), AuthSource.CSMS)
        except _NO_ANSWER as exc:
            log.info("authorization: no answer from the CSMS (%s); applying offline rules", exc)
            return self._offline(token)

    def _offline(self, token: IdToken) -> Decision:
        """The offline rules: known tokens per LocalAuthorizeOffline, unknown ones per AllowOfflineTxForUnknownId."""
        known = self._known(token)
        if known is not None and not known.accepted:
            # A known Blocked/Expired/Invalid token is refused even when offline
            # authorization is off: AllowOfflineTxForUnknownId is for unknown tokens only.
            return known
        if known is not None and self._settings["local_authorize_offline"]:
            return known
        if self._settings["allow_offline_tx_for_unknown_id"]:
            return Decision(_ACCEPTED, AuthSource.OFFLINE_UNKNOWN)
        return Decision(_INVALID, AuthSource.OFFLINE_REJECTED)

    def _known(self, token: IdToken) -> Decision | None:
        """What the local list, or else the cache, says about ``token``; the list always wins."""
        listed = self._listed(token)
        if listed is not None:
            return Decision(effective(listed, self._clock.time()), AuthSource.LOCAL_LIST)
        if not self._settings["authorization_cache_enabled"]:
            return None
        try:
            cached = self._cache.get(normalize(token), token.type)
        except StoreError as exc:
            log.warning("authorization cache unreadable, treating the token as not cached: %s", exc)
            return None
        return None if cached is None else Decision(cached, AuthSource.CACHE)

    def _listed(self, token: IdToken) -> IdTokenInfo | None:
        """The local list's entry for ``token``, or None if absent or the list is disabled."""
        if self.local_list is None or not self.local_list.enabled:
            return None
        return self.local_list.lookup(normalize(token), token.type)

    async def _ask_csms(self, online: OnlineAuthorize, token: IdToken) -> IdTokenInfo:
        """Send Authorize, or join the request already in flight for the same token."""
        key = token_key(token, token.type)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(online, token))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
        # shield: a caller that gives up must not cancel the request the others wait for.
        return await asyncio.shield(task)

    async def _fetch(self, online: OnlineAuthorize, token: IdToken) -> IdTokenInfo:
        """One Authorize round trip; the answer is remembered once, however many callers wait."""
        info = await online(token)
        self.remember(token, info, token_type=token.type)
        return info

    def _settle(self, key: str, task: asyncio.Future[IdTokenInfo]) -> None:
        """Drop a finished request so the next presentation asks the CSMS again."""
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every caller may have gone away

    def remember(self, id_token: str, info: IdTokenInfo, *, token_type: str | None = None) -> None:
        """Cache idTagInfo from an Authorize/StartTransaction/StopTransaction confirmation.

        ``token_type`` is the type the token was presented as (2.0.1); without it
        the entry stands for the token in any type, as in 1.6.

        Nothing is stored when the cache is disabled, for tokens in the local
        list (the list is the CSMS's authority for them, OCPP 1.6 §3.5.3), or
        for ConcurrentTx, which describes the token's current use rather than
        its validity and would refuse it offline for no reason.
        """
        if not self._settings["authorization_cache_enabled"]:
            return
        if info.status is AuthorizationStatus.CONCURRENT_TX:
            return
        token = IdToken(id_token, token_type)
        if self._listed(token) is not None:
            return
        try:
            self._cache.put(normalize(token), info, token.type)
        except StoreError as exc:
            # The CSMS's verdict stands; only the offline fallback loses this entry.
            log.warning("authorization cache not updated: %s", exc)

    def clear_cache(self) -> bool:
        """Empty the cache (ClearCache); True = Accepted.

        False (Rejected: "not executed") when the cache is disabled, as 2.0.1
        requires and 1.6 allows, and when the store cannot be written.
        """
        if not self._settings["authorization_cache_enabled"]:
            return False
        try:
            self._cache.clear()
        except StoreError as exc:
            log.warning("authorization cache not cleared: %s", exc)
            return False
        return True

    def same_group(self, a: str, b: str, *, group_of_a: str | None, group_of_b: str | None = None) -> bool:
        """True if token ``b`` may act for ``a`` (e.g. stop its transaction): same token or same group.

        ``b``'s group is ``group_of_b`` when the caller has it (e.g. from an
        Authorize answer), else what the local list or cache knows. Only the
        group is compared; whether ``b`` itself is valid is the caller's call.
        """
        if normalize(a) == normalize(b):
            return True
        if group_of_a is None:
            return False
        if group_of_b is None:
            known = self._known(IdToken(b))
            group_of_b = None if known is None else known.info.group_id
        return group_of_b is not None and normalize(group_of_b) == normalize(group_of_a)

    def __repr__(self) -> str:
        state = "free-vend" if self.free_vend else ("online" if self.online else "offline")
        return f"<Authorizer {state} inflight={len(self._inflight)}>"
