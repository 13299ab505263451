"""OutboxSender.settle, the outbox's part of a stop on purpose (a reset, SIGTERM): what is due goes out and
the CALL in flight gets its answer before the socket closes, then nothing more is sent; a CSMS that does not
answer delays the stop by the bound only. A real SQLite outbox; the CSMS is a coroutine the test answers."""

from __future__ import annotations

import asyncio

from agent.protocol.common.outbox import OutboxSender

SETTINGS = {"transaction_message_attempts": 3, "transaction_message_retry_interval_s": 1}


class Codec:
    """Sends each record's payload as is, and remembers what was committed."""

    def __init__(self):
        self.committed: list[str] = []

    def encode(self, item):
        return item.payload["name"]

    def apply(self, item, result) -> None:
        pass

    def after_commit(self, item, result) -> None:
        self.committed.append(item.payload["name"])


class Csms:
    """Answers each CALL when the test says so."""

    def __init__(self):
        self.sent: list[str] = []
        self.answers: asyncio.Queue = asyncio.Queue()

    async def call(self, payload):
        self.sent.append(payload)
        return await self.answers.get()


def sender(store, csms):
    codec = Codec()
    return OutboxSender(store, settings=SETTINGS, codec=codec, call=csms.call), codec


async def test_settle_waits_for_the_answer_in_flight_and_what_is_due_then_sends_nothing(store):
    csms = Csms()
    outbox, codec = sender(store, csms)
    store.outbox.append("TransactionEvent", {"name": "updated"}, group="tx1")
    store.outbox.append("TransactionEvent", {"name": "ended"}, group="tx1")
    runner = asyncio.create_task(outbox.run())
    await asyncio.sleep(0.05)
    assert csms.sent == ["updated"]  # in flight, unanswered
    settle = asyncio.create_task(outbox.settle(timeout=2.0))
    await asyncio.sleep(0.05)
    assert not settle.done()  # the stop waits for the answer
    await csms.answers.put("ok")
    await asyncio.sleep(0.05)
    assert csms.sent == ["updated", "ended"] and not settle.done()  # what is due goes out too
    await csms.answers.put("ok")
    assert await asyncio.wait_for(settle, 1.0) is True
    assert codec.committed == ["updated", "ended"] and store.outbox.head() is None
    store.outbox.append("StatusNotification", {"name": "late"})
    outbox.wake()
    await asyncio.sleep(0.05)
    assert csms.sent == ["updated", "ended"]  # settled: nothing more on this connection
    runner.cancel()


async def test_settle_is_bounded_when_the_csms_does_not_answer(store):
    csms = Csms()
    outbox, _ = sender(store, csms)
    store.outbox.append("TransactionEvent", {"name": "updated"}, group="tx1")
    runner = asyncio.create_task(outbox.run())
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await outbox.settle(timeout=0.2) is False
    assert 0.15 < loop.time() - began < 0.5
    assert store.outbox.head() is not None  # kept: it goes out after the restart
    runner.cancel()


async def test_settle_returns_at_once_with_nothing_due(store):
    outbox, _ = sender(store, Csms())
    assert await asyncio.wait_for(outbox.settle(timeout=5.0), 0.1) is True
