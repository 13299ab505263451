"""Storage supervision in the runtime: the state store and the message log when the disk refuses writes.

A connection switched to ``PRAGMA query_only`` refuses every write with SQLITE_READONLY, as a read-only
file system does; switched back, it writes again (the end-to-end tests fill a real tmpfs instead).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from agent.runtime.message_log import MessageLog
from agent.runtime.storage_health import (MESSAGE_LOG, STATE_STORE, StorageFault, StorageHealth,
                                          is_write_failure)
from agent.runtime.store import StateStore


def refuse_writes(store: StateStore, refuse: bool = True) -> None:
    store.connection.execute(f"PRAGMA query_only = {'ON' if refuse else 'OFF'}")


def on_disk(path, key: str):
    """The kv value as another process would read it from the file."""
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def test_storage_write_failures_are_told_from_statement_errors():
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13
    bug = sqlite3.OperationalError("no such table: x")
    bug.sqlite_errorcode = 1
    assert is_write_failure(full) and is_write_failure(OSError(28, "No space left on device"))
    assert not is_write_failure(bug)


def test_storage_store_holds_key_values_in_memory_and_writes_them_on_retry(store, db_path):
    store.put("kept", 1)
    refuse_writes(store)
    store.put("kept", 2)  # no exception: held
    store.delete("gone")
    assert store.writes_held and store.health.failing(STATE_STORE)
    assert store.get("kept") == 2 and on_disk(db_path, "kept") == 1
    with pytest.raises(StorageFault):
        store.outbox.append("SecurityEventNotification", {"type": "x"})  # not held: the caller decides
    assert store.health.retry_now() is False  # still refused: still held
    refuse_writes(store, False)
    assert store.health.retry_now() is True
    assert not store.writes_held and on_disk(db_path, "kept") == 2


def test_storage_outbox_sends_nothing_while_writes_are_held(store):
    item = store.outbox.append("Heartbeat", {})
    refuse_writes(store)
    store.put("k", 1)
    assert store.outbox.head() is None  # answered, it could not be removed: it would go twice
    refuse_writes(store, False)
    store.health.retry_now()
    assert store.outbox.head() == item


async def test_storage_health_tells_listeners_once_per_change_and_clears_by_itself(tmp_path):
    health = StorageHealth(retry_interval_s=0.05)
    heard: list[tuple[bool, str]] = []
    health.add_listener(lambda failing, info: heard.append((failing, info)))
    with StateStore(tmp_path / "state.sqlite", health=health) as store:
        refuse_writes(store)
        store.put("a", 1)
        store.put("b", 2)
        await asyncio.sleep(0.2)
        assert heard == [(True, "state store cannot be written: attempt to write a readonly database")]
        refuse_writes(store, False)
        for _ in range(50):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.02)
        assert heard[1:] == [(False, "")] and store.get("b") == 2 and not health.failing()


def test_storage_message_log_gives_way_while_the_store_fails_and_counts_what_it_dropped(tmp_path):
    health = StorageHealth()
    with MessageLog(tmp_path / "messages.sqlite", health=health) as msglog:
        msglog.append("out", '[2,"1","Heartbeat",{}]')
        health.failed(STATE_STORE, sqlite3.OperationalError("database or disk is full"))
        msglog.append("out", '[2,"2","Heartbeat",{}]')
        msglog.append("in", '[3,"2",{}]')
        assert len(msglog.query()) == 1 and msglog.dropped == 2
        health.failed(MESSAGE_LOG, sqlite3.OperationalError("database or disk is full"))
        with pytest.raises(StorageFault):
            msglog.retry()  # the state store gets freed space first
        health.recovered(STATE_STORE)
        assert health.retry_now() is True  # the log writes its note of dropped frames: writable again
        msglog.append("out", '[2,"3","Heartbeat",{}]')
        assert [f.message_id for f in msglog.query()] == ["3", "1"]


def test_storage_message_log_write_refused_by_the_disk_is_reported_never_raised(tmp_path):
    path = tmp_path / "messages.sqlite"
    MessageLog(path).close()
    health = StorageHealth()
    with MessageLog(path, readonly=True, health=health) as broken:  # its writes are refused
        broken.append("out", '[2,"1","Heartbeat",{}]')
        broken.append("out", '[2,"2","Heartbeat",{}]')
    assert health.failing(MESSAGE_LOG) and broken.dropped == 2


def test_storage_an_answered_record_whose_removal_is_refused_is_not_sent_twice(store, db_path):
    item = store.outbox.append("StartTransaction", {"evse_id": 1}, group="tx")
    refuse_writes(store)
    applied = []
    store.outbox.delivered(item.id, apply=lambda: applied.append(item.id))  # the CSMS answered; the disk refuses
    assert store.outbox.pending() == [] and len(store.outbox) == 0  # gone as far as the sender can tell
    refuse_writes(store, False)
    assert store.health.retry_now() is True and applied == [item.id]  # the answer applied with the removal
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
