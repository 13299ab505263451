"""Delivers the durable outbox over the current connection, in two lanes, one CALL at a time.

The transaction lane holds the records of transactions (outbox records with a group: 1.6
StartTransaction, MeterValues of a transaction, StopTransaction; 2.0.1 TransactionEvent). It is
strictly FIFO: its head goes first whenever it is due, and nothing queued after it overtakes it.
A CALLERROR (or an invalid answer) counts as a failed attempt: the head waits
TransactionMessageRetryInterval x attempts and is discarded after TransactionMessageAttempts;
a timeout or a lost connection does not count: the record was not delivered and simply goes again.

The other lane holds everything else (security events, hardware-fault NotifyEvents). Its records
go only while no transaction record is due, so they are never sent ahead of one, and each failure
only reschedules that record, so none of them can hold the transactions back. The drop rule:

- a CALLERROR that says the message can never be taken as worded (NotImplemented, NotSupported,
  FormationViolation/FormatViolation, ProtocolError, PropertyConstraintViolation,
  OccurenceConstraintViolation, TypeConstraintViolation, SecurityError) drops it at once;
- any other failure (InternalError, GenericError or another CALLERROR, no answer, an invalid
  answer) is a failed attempt: the record is tried again after TransactionMessageRetryInterval x
  attempts, while the transaction lane goes on, and dropped after TransactionMessageAttempts.

Retry times live in this sender (one per connection): a new connection tries every record at
once; the attempt counts are durable. A record leaves the outbox only in the same SQLite
transaction that applies the CSMS's answer (e.g. the transactionId of a StartTransaction), so a
crash at any point either replays the record or has fully applied it.
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
#: CALLERROR codes saying a message can never be taken as it is worded: sending it again cannot help.
PERMANENT_CODES = UNSUPPORTED_CODES | frozenset({
    "FormationViolation", "FormatViolation", "ProtocolError", "PropertyConstraintViolation",
    "OccurenceConstraintViolation", "OccurrenceConstraintViolation", "TypeConstraintViolation", "SecurityError",
})


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
    """Sends outbox records while a connection is up, transaction lane first; woken when records are added."""

    def __init__(self, store, *, settings, codec: OutboxCodec, call):
        self._store = store
        self._settings = settings
        self._codec = codec
        self._call = call
        self._wake = asyncio.Event()
        self._not_before: dict[int, float] = {}  # record id -> loop time of its next attempt, after a failure
        self._drained = asyncio.Event()  # set while nothing is due and no CALL of ours waits for its answer
        self._drained.set()
        self._settling = False

    def wake(self) -> None:
        """New records were queued."""
        self._wake.set()

    async def settle(self, *, timeout: float) -> bool:
        """Before a stop on purpose: deliver what is due now (an Ended event of a reset, the answer to the CALL
        in flight), for at most ``timeout`` s, then send nothing more, so that the CSMS has the records before
        the restart and is not sent one again with the same seqNo after it. True if nothing due was left."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self._settling = True

    async def run(self) -> None:
        """Deliver until the connection drops (CallAborted/ConnectionLost end the loop)."""
        while True:
            item, wait = self._next() if not self._settling else (None, None)
            if item is None:
                self._drained.set()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass  # a record's retry time came
                continue
            self._drained.clear()
            try:
                await self._deliver(item)
            except (CallAborted, ConnectionLost):
                self._drained.set()  # nothing more goes out on this connection
                return

    def _next(self) -> tuple[OutboxItem | None, float | None]:
        """The record to send now, or None and how long until one is due (None: until woken)."""
        now = asyncio.get_running_loop().time()
        waiting = [i for i, due in self._not_before.items() if due > now]
        head = self._store.outbox.head(grouped=True)
        if head is not None and head.id not in waiting:
            return head, None
        other = self._store.outbox.head(grouped=False, skip=waiting)
        if other is not None:
            return other, None
        return None, (min(self._not_before[i] for i in waiting) - now) if waiting else None

    async def _deliver(self, item: OutboxItem) -> None:
        try:
            payload = self._codec.encode(item)
        except Undeliverable as exc:
            log.error("discarding %s #%d: %s", item.action, item.id, exc)
            self._discard(item)
            return
        if payload is None:  # a record this OCPP version does not report
            self._discard(item)
            return
        transaction = item.group is not None
        try:
            result = await self._call(payload)
        except CallTimeout as exc:
            if transaction:
                log.warning("%s #%d: no answer; sending it again", item.action, item.id)
            else:
                self._failed_other(item, exc)
            return
        except (CallErrorReceived, InvalidResponse) as exc:
            (self._failed_transaction if transaction else self._failed_other)(item, exc)
            return
        # Applied and removed in one SQLite transaction; held in memory if the disk refuses (storage supervision).
        self._store.outbox.delivered(item.id, apply=lambda: self._codec.apply(item, result))
        self._not_before.pop(item.id, None)
        self._codec.after_commit(item, result)

    def _discard(self, item: OutboxItem) -> None:
        self._store.outbox.remove(item.id)
        self._not_before.pop(item.id, None)

    def _failed_transaction(self, item: OutboxItem, exc: Exception) -> None:
        """A transaction record was refused: the lane waits for its retry (order is kept), or drops it."""
        attempts = self._store.outbox.record_attempt(item.id)
        allowed = max(1, self._settings["transaction_message_attempts"])
        if attempts >= allowed:
            log.error("%s #%d failed %d times (%s); discarded as TransactionMessageAttempts says",
                      item.action, item.id, attempts, exc)
            self._discard(item)
            return
        delay = self._retry_later(item, attempts)
        log.warning("%s #%d failed (%s); attempt %d of %d in %d s", item.action, item.id, exc,
                    attempts + 1, allowed, delay)

    def _failed_other(self, item: OutboxItem, exc: Exception) -> None:
        """A record of the other lane failed: dropped if it never can succeed or has had its attempts,
        else tried again later, on its own, while the transaction lane goes on."""
        code = getattr(exc, "code", None)
        if code in PERMANENT_CODES:
            # e.g. a 1.6 CSMS without the security extension: retrying could never succeed.
            log.info("%s #%d: the CSMS refuses it for good (%s); discarded", item.action, item.id, code)
            self._discard(item)
            return
        attempts = self._store.outbox.record_attempt(item.id)
        allowed = max(1, self._settings["transaction_message_attempts"])
        if attempts >= allowed:
            log.error("%s #%d failed %d times (%s); discarded", item.action, item.id, attempts, exc)
            self._discard(item)
            return
        delay = self._retry_later(item, attempts)
        log.warning("%s #%d failed (%s); attempt %d of %d in %d s, transaction messages go meanwhile",
                    item.action, item.id, exc, attempts + 1, allowed, delay)

    def _retry_later(self, item: OutboxItem, attempts: int) -> float:
        """Hold ``item`` back for TransactionMessageRetryInterval x ``attempts``; returns the delay."""
        delay = self._settings["transaction_message_retry_interval_s"] * attempts
        self._not_before[item.id] = asyncio.get_running_loop().time() + delay
        return delay
