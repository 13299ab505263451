"""Tests of agent.runtime.store: the SQLite state store and the durable outbox, on real files."""

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.runtime import store as store_module
from agent.errors import StoreError
from agent.runtime.store import MIGRATIONS, OutboxItem, StateStore

WRITER = Path(__file__).with_name("store_writer.py")


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "data" / "state.sqlite"


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- opening, pragmas, permissions -------------------------------------------------


def test_store_uses_wal_full_sync_and_busy_timeout(store):
    conn = store.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_store_creates_private_directory_and_files(store, db_path):
    store.put("token", "secret")  # make sure the -wal and -shm files exist
    assert mode_of(db_path.parent) == 0o750
    assert mode_of(db_path) == 0o640
    for suffix in ("-wal", "-shm"):
        assert mode_of(f"{db_path}{suffix}") & 0o007 == 0


def test_store_removes_world_access_from_existing_file(db_path):
    db_path.parent.mkdir()
    sqlite3.connect(db_path).close()
    os.chmod(db_path, 0o666)
    StateStore(db_path).close()
    assert mode_of(db_path) == 0o660


def test_store_keeps_existing_parent_directory_mode(tmp_path):
    os.chmod(tmp_path, 0o755)
    StateStore(tmp_path / "state.sqlite").close()
    assert mode_of(tmp_path) == 0o755


# --- migrations ------------------------------------------------------------------


def test_store_migrations_applied_once_and_version_persists(db_path, monkeypatch):
    StateStore(db_path).close()
    with StateStore(db_path) as reopened:
        assert reopened.schema_version == len(MIGRATIONS)

    # A later issue appends a script: it runs once, on the next open only
    # (a second CREATE TABLE would fail).
    extended = MIGRATIONS + ("CREATE TABLE extra (x INTEGER);",)
    monkeypatch.setattr(store_module, "MIGRATIONS", extended)
    for _ in range(2):
        with StateStore(db_path) as upgraded:
            assert upgraded.schema_version == len(MIGRATIONS) + 1
            upgraded.connection.execute("INSERT INTO extra VALUES (1)")
    with StateStore(db_path) as final:
        assert final.connection.execute("SELECT count(*) FROM extra").fetchone()[0] == 2


def test_store_failed_migration_rolls_back_whole_script(db_path, monkeypatch):
    StateStore(db_path).close()
    broken = "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1);"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS + (broken,))
    with pytest.raises(StoreError, match="migration to schema version"):
        StateStore(db_path)
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS)
    with StateStore(db_path) as reopened:
        assert reopened.schema_version == len(MIGRATIONS)
        tables = {row[0] for row in reopened.connection.execute("SELECT name FROM sqlite_master")}
        assert "half" not in tables


def test_store_refuses_schema_newer_than_code(db_path):
    StateStore(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        StateStore(db_path)


# --- key/value state -------------------------------------------------------------


def test_store_get_put_delete(store):
    assert store.get("missing") is None
    assert store.get("missing", 42) == 42
    values = {"int": 1, "text": "é", "list": [1, "a", None], "dict": {"a": {"b": 2.5}},
              "none": None}
    for key, value in values.items():
        store.put(key, value)
    assert {key: store.get(key, "absent") for key in values} == values
    store.put("int", 2)
    assert store.get("int") == 2
    store.delete("int")
    store.delete("int")  # deleting twice is fine
    assert store.get("int", "gone") == "gone"


def test_store_values_survive_reopen(db_path):
    with StateStore(db_path) as first:
        first.put("config", {"HeartbeatInterval": 300})
    with StateStore(db_path) as second:
        assert second.get("config") == {"HeartbeatInterval": 300}


def test_store_put_refuses_values_json_cannot_hold(store):
    with pytest.raises(TypeError):
        store.put("bad", object())
    with pytest.raises(ValueError):
        store.put("bad", float("nan"))
    assert store.get("bad") is None


def test_store_transaction_is_all_or_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.put("a", 1)
            store.outbox.append("StartTransaction", {"connectorId": 1})
            raise RuntimeError("boom")
    assert store.get("a") is None
    assert len(store.outbox) == 0

    with store.transaction():
        store.put("a", 1)
        store.outbox.append("StartTransaction", {"connectorId": 1})
    assert store.get("a") == 1
    assert len(store.outbox) == 1


def test_store_nested_transaction_undoes_only_inner_block(store):
    with store.transaction():
        store.put("outer", 1)
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.put("inner", 2)
                raise RuntimeError("inner fails")
        store.put("after", 3)
    assert (store.get("outer"), store.get("inner"), store.get("after")) == (1, None, 3)
    assert not store.connection.in_transaction


# --- outbox ----------------------------------------------------------------------


def test_outbox_keeps_order_and_removes_after_result(store):
    outbox = store.outbox
    assert outbox.head() is None and outbox.pending() == [] and len(outbox) == 0
    items = [outbox.append("MeterValues", {"n": n}) for n in range(3)]
    assert [item.id for item in items] == sorted(item.id for item in items)
    assert outbox.head() == items[0]
    assert outbox.pending() == items
    assert len(outbox) == 3

    outbox.remove(items[0].id)
    outbox.remove(items[0].id)  # a duplicate CALLRESULT is harmless
    assert outbox.head() == items[1]
    assert [item.payload for item in outbox.pending()] == [{"n": 1}, {"n": 2}]


def test_outbox_item_fields(store):
    before = time.time()
    item = store.outbox.append("StartTransaction", {"idTag": "04A1"}, group="tx-1")
    assert isinstance(item, OutboxItem)
    assert (item.action, item.payload, item.attempts, item.group) == (
        "StartTransaction", {"idTag": "04A1"}, 0, "tx-1")
    assert before <= item.created_at <= time.time()


def test_outbox_attempts_and_payload_update(store):
    outbox = store.outbox
    start = outbox.append("StartTransaction", {"idTag": "04A1"}, group="tx-1")
    stop = outbox.append("StopTransaction", {"transactionId": None}, group="tx-1")
    other = outbox.append("MeterValues", {}, group="tx-2")
    assert outbox.record_attempt(start.id) == 1
    assert outbox.record_attempt(start.id) == 2
    outbox.update_payload(stop.id, {"transactionId": 17})

    assert outbox.head().attempts == 2
    assert [item.id for item in outbox.pending(group="tx-1")] == [start.id, stop.id]
    assert outbox.pending(group="tx-2") == [other]
    assert outbox.pending()[1].payload == {"transactionId": 17}


def test_outbox_unknown_item_raises_key_error(store):
    with pytest.raises(KeyError):
        store.outbox.record_attempt(999)
    with pytest.raises(KeyError):
        store.outbox.update_payload(999, {})


def test_outbox_survives_reopen_and_never_reuses_ids(db_path):
    with StateStore(db_path) as first:
        a = first.outbox.append("StartTransaction", {"n": 1}, group="g")
        b = first.outbox.append("StopTransaction", {"n": 2})
        first.outbox.record_attempt(a.id)
    with StateStore(db_path) as second:
        pending = second.outbox.pending()
        assert [(i.id, i.action, i.payload, i.attempts, i.group) for i in pending] == [
            (a.id, "StartTransaction", {"n": 1}, 1, "g"),
            (b.id, "StopTransaction", {"n": 2}, 0, None),
        ]
        for item in pending:
            second.outbox.remove(item.id)
    with StateStore(db_path) as third:
        # Ids are the sending order, so a drained outbox must not start again at 1.
        assert third.outbox.append("Heartbeat", {}).id > b.id


# --- damaged or unusable files -----------------------------------------------------


def test_store_garbage_file_raises_store_error_with_path(db_path):
    db_path.parent.mkdir()
    db_path.write_bytes(random.Random(1).randbytes(8192))
    with pytest.raises(StoreError, match=str(db_path)) as caught:
        StateStore(db_path)
    assert not isinstance(caught.value, sqlite3.Error)
    assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_store_corrupt_page_raises_store_error(db_path):
    with StateStore(db_path) as store:
        for n in range(200):
            store.put(f"key-{n}", "v" * 200)
    data = bytearray(db_path.read_bytes())
    page_size = 4096
    assert len(data) > 3 * page_size
    data[page_size:2 * page_size] = random.Random(2).randbytes(page_size)  # page 2
    db_path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=str(db_path)):
        StateStore(db_path)


def test_store_unopenable_path_raises_store_error(tmp_path):
    (tmp_path / "a-directory").mkdir(mode=0o755)
    with pytest.raises(StoreError, match="a-directory"):
        StateStore(tmp_path / "a-directory")
    assert mode_of(tmp_path / "a-directory") == 0o755  # not "tightened" like a database file
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StoreError, match="a-file"):
        StateStore(tmp_path / "a-file" / "state.sqlite")


def test_store_use_after_close_raises_store_error(db_path):
    store = StateStore(db_path)
    store.close()
    store.close()
    with pytest.raises(StoreError):
        store.get("x")
    with pytest.raises(StoreError):
        store.outbox.append("Heartbeat", {})


# --- kill test: durability under SIGKILL -------------------------------------------


def run_writer_and_kill(db_path: Path, rng: random.Random, err_file) -> list[int]:
    """Start the writer, SIGKILL it at a random moment, return the ids it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), str(db_path)],
        stdout=subprocess.PIPE, stderr=err_file, text=True,
    )
    first = ""  # the first acknowledged id, read before the kill
    try:
        if rng.random() < 0.85:
            if proc.stdout.readline() != "ready\n":
                proc.wait(timeout=10)
                pytest.fail(f"writer did not start (exit {proc.returncode}), see {err_file.name}")
            # Wait for the first acknowledged write, so a loaded machine still kills mid-writing.
            first = proc.stdout.readline()
            time.sleep(rng.uniform(0, 0.04))
        else:
            time.sleep(rng.uniform(0, 0.15))  # may land in start-up: recovery, migration
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        rest = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, f"writer exited by itself, see {err_file.name}"
    lines = rest.split("\n")[:-1]  # a last line without "\n" was cut by the kill
    early = [first.strip()] if first.endswith("\n") else []
    return [int(line) for line in [*early, *lines] if line and line != "ready"]


def check_store_after_kills(db_path: Path, acknowledged: list[int], kills: int) -> None:
    """Integrity, every acknowledged id present and in order, transactions whole."""
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert acknowledged == sorted(set(acknowledged)), "acknowledged ids out of order"
    with StateStore(db_path) as store:
        pending = store.outbox.pending()
        ids = [item.id for item in pending]
        assert ids == sorted(set(ids))
        missing = set(acknowledged) - set(ids)
        assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
        # At most the write in flight at each kill (up to two ids) went unacknowledged.
        assert len(set(ids) - set(acknowledged)) <= 2 * kills
        pairs = {}
        for item in pending:
            if item.group and item.group.startswith("pair-"):
                pairs.setdefault(item.group, []).append(item.payload["half"])
        assert all(halves == [1, 2] for halves in pairs.values()), "half a transaction"
        assert store.get("pairs", 0) == len(pairs)


def kill_writer_repeatedly(tmp_path: Path, kills: int, seed: int) -> None:
    db_path = tmp_path / "data" / "state.sqlite"
    rng = random.Random(seed)
    acknowledged: list[int] = []
    with open(tmp_path / "writer-stderr.txt", "w") as err_file:
        for _ in range(kills):
            acknowledged += run_writer_and_kill(db_path, rng, err_file)
    assert len(acknowledged) > kills, "the kills never landed while the writer was writing"
    check_store_after_kills(db_path, acknowledged, kills)


def test_store_survives_sigkill_of_writer(tmp_path):
    kill_writer_repeatedly(tmp_path, kills=30, seed=20261121)


@pytest.mark.slow
def test_store_survives_many_sigkills_of_writer(tmp_path):
    kill_writer_repeatedly(tmp_path, kills=300, seed=int(time.time()))
