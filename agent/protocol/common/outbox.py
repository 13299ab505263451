"""Delivers the durable outbox over the current connection: in order, one at a time, exactly as queued.

A record leaves the outbox only in the same SQLite transaction that applies
the CSMS's answer (e.g. the transactionId of a StartTransaction), so a crash at
any point either replays the record or has fully applied it. A CALLERROR
counts as a failed attempt (TransactionMessageAttempts, with the retry interval
growing per attempt); timeouts and lost connections do not: the record was not
delivered and simply goes again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from agent.runtime.clock import format_iso
from agent.errors import CallAborted, CallTimeout, ConnectionLost
from agent.errors import CallErrorReceived, InvalidResponse
from agent.core.charging.transactions import STARTED
from agent.runtime.store import OutboxItem

log = logging.getLogger("agent.outbox")


#: CALLERROR codes saying the CSMS does not handle the action at all (1.6 spells one "NotImplemented").
UNSUPPORTED_CODES = frozenset({"NotImplemented", "NotSupported"})


class Undeliverable(Exception):
    """A record that can never be sent (its transaction's start was dropped); it is discarded."""


class OutboxCodec(Protocol):
    """Turns neutral outbox records into one version's CALLs and applies the answers."""

    def encode(self, item: OutboxItem):
        """The CALL payload for ``item``; raise Undeliverable if it can never be sent."""

    def apply(self, item: OutboxItem, result) -> None:
        """Apply the CALLRESULT (inside the SQLite transaction that removes the item)."""

    def after_commit(self, item: OutboxItem, result) -> None:
        """Act on the answer once it is durable (e.g. stop a transaction whose token was refused)."""


class CoreCodec:
    """What both versions' codecs share: the core services, and acting on the CSMS's verdict on a token."""

    def __init__(self, *, journal, authorizer, station):
        self._journal = journal
        self._authorizer = authorizer
        self._station = station

    #: The version's ``call`` module (ocpp.v16.call / ocpp.v201.call), for the messages both versions share.
    calls = None
    #: The core records security events under their 2.0.1 names; a version that spells some differently maps them.
    security_event_names: dict[str, str] = {}

    def security_event(self, item: OutboxItem):
        """SecurityEventNotification for a queued security event (same fields in 1.6 and 2.0.1)."""
        p = item.payload
        tech_info = p.get("tech_info") or None
        kind = self.security_event_names.get(p["type"], p["type"])
        return self.calls.SecurityEventNotification(type=kind, timestamp=format_iso(p["timestamp"]),
                                                    tech_info=tech_info and tech_info[:255])

    def apply(self, item: OutboxItem, result) -> None:
        """By default nothing in the answer needs recording."""

    def token_info(self, result):
        """The core IdTokenInfo in a CALLRESULT, or None (version-specific)."""
        raise NotImplementedError

    def after_commit(self, item: OutboxItem, result) -> None:
        """Cache the token verdict the CSMS returned, and stop a transaction whose token it refused."""
        info = self.token_info(result)
        token = item.payload.get("id_token")
        if info is None or not token:
            return
        self._authorizer.remember(token, info)
        if item.action == STARTED and not info.accepted:
            log.warning("CSMS refused %s for transaction %s (%s)", token, item.payload["ref"], info.status.value)
            self._station.deauthorize(item.payload["ref"])


class OutboxSender:
    """Sends outbox records while a connection is up; woken when records are added."""

    def __init__(self, store, *, settings, codec: OutboxCodec, call):
        self._store = store
        self._settings = settings
        self._codec = codec
        self._call = call
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New records were queued."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until the connection drops (CallAborted/ConnectionLost end the loop)."""
        while True:
            item = self._store.outbox.head()
            if item is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._deliver(item)
            except (CallAborted, ConnectionLost):
                return

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            payload = self._codec.encode(item)
        except Undeliverable as exc:
            log.error("discarding %s #%d: %s", item.action, item.id, exc)
            self._store.outbox.remove(item.id)
            return
        if payload is None:  # a record this OCPP version does not report
            self._store.outbox.remove(item.id)
            return
        try:
            result = await self._call(payload)
        except CallTimeout:
            log.warning("%s #%d: no answer; sending it again", item.action, item.id)
            return
        except (CallErrorReceived, InvalidResponse) as exc:
            await self._failed(item, exc)
            return
        with self._store.transaction():
            self._codec.apply(item, result)
            self._store.outbox.remove(item.id)
        self._codec.after_commit(item, result)

    async def _failed(self, item: OutboxItem, exc: Exception) -> None:
        if item.group is None and getattr(exc, "code", None) in UNSUPPORTED_CODES:
            # A 1.6 CSMS without the security extension: retrying a security event would only
            # hold back the transaction messages queued behind it.
            log.info("%s #%d: the CSMS does not support it (%s); discarded", item.action, item.id, exc.code)
            self._store.outbox.remove(item.id)
            return
        attempts = self._store.outbox.record_attempt(item.id)
        allowed = max(1, self._settings["transaction_message_attempts"])
        if attempts >= allowed:
            log.error("%s #%d failed %d times (%s); discarded as TransactionMessageAttempts says",
                      item.action, item.id, attempts, exc)
            self._store.outbox.remove(item.id)
            return
        delay = self._settings["transaction_message_retry_interval_s"] * attempts
        log.warning("%s #%d failed (%s); attempt %d of %d in %d s", item.action, item.id, exc,
                    attempts + 1, allowed, delay)
        await asyncio.sleep(delay)
