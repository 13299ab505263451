"""The transaction journal: every transaction, and what the CSMS must hear about it, in SQLite.

Each change to a transaction and the outbox record that reports it are written
in ONE SQLite transaction, so after a power cut at any instant either both exist
or neither does. The outbox holds version-neutral records (``TransactionStarted``,
``TransactionMeterValues``, ``TransactionEnded``); the protocol adapter turns
them into 1.6 or 2.0.1 messages when it sends them, which is also when the
CSMS's transactionId (known only after StartTransaction is confirmed) is filled
in - never a placeholder on the wire.

Stamps made before the station clock was first synchronised carry an
``unsynced`` mark (:meth:`agent.runtime.clock.Clock.unsynced_mark`, through the
store's ``stamp_mark``); :func:`correct_stamps` turns them into CSMS time once
the clock is synchronised, before any of them is sent.

While the state store cannot be written (``StateStore.writes_held``: disk full,
read-only, I/O error) no transaction begins (:class:`StorageFault`), and every
other change of a running one is held in memory, in order, with reads seeing
the transactions as those changes leave them; the store's retry writes them
(:meth:`TransactionJournal.flush`), each change still in one SQLite transaction.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Callable

from agent.core.charging.model import MeterSample, Sample, StopReason
from agent.runtime.clock import UNSYNCED, ClockCorrection
from agent.runtime.storage_health import StorageFault

Write = Callable[[sqlite3.Connection], None]

STARTED = "TransactionStarted"
METER_VALUES = "TransactionMeterValues"
# A change 1.6 has no message for (2.0.1 reports each as TransactionEvent Updated): the charging
# state, an idToken given after the start, or a report the CSMS asked for (``trigger``).
STATUS = "TransactionStatus"
ENDED = "TransactionEnded"
#: The trigger of the STATUS record that says a running transaction's operation mode changed (OCPP 2.1
#: TriggerReason; only a 2.1 profile can set a mode other than the default, so only 2.1 ever sees it).
OPERATION_MODE_CHANGED = "OperationModeChanged"
_MODE_KEY = "transaction_operation_mode:"  # + ref: the mode recorded for a running transaction, for a resume


@dataclass(frozen=True)
class Transaction:
    """One transaction as the journal holds it."""

    ref: str  # our id: 2.0.1 transactionId, and the outbox group
    evse_id: int
    id_token: str  # "" while a transaction started at plug-in has no idToken yet (2.0.1 TxStartPoint)
    group_id: str | None
    started_at: float
    meter_start_Wh: float
    remote_id: str | None  # the 1.6 transactionId the CSMS assigned, once confirmed
    last_meter_Wh: float
    stopped_at: float | None = None
    meter_stop_Wh: float | None = None
    stop_reason: str | None = None
    seq_no: int = 0  # 2.0.1: next seqNo of TransactionEvent
    remote_start_id: int | None = None

    @property
    def active(self) -> bool:
        """True until the transaction has ended."""
        return self.stopped_at is None


_COLUMNS = ("ref, evse_id, id_token, group_id, started_at, meter_start_Wh, remote_id, last_meter_Wh, "
            "stopped_at, meter_stop_Wh, stop_reason, seq_no, remote_start_id")



def sample_to_dict(sample: MeterSample) -> dict:
    """A MeterSample as JSON-ready data for the outbox."""
    return {"timestamp": sample.timestamp, "values": [asdict(v) for v in sample.values]}


def sample_from_dict(data: dict) -> MeterSample:
    """The inverse of ``sample_to_dict``."""
    return MeterSample(data["timestamp"], tuple(Sample(**v) for v in data["values"]))


class TransactionJournal:
    """Transactions and their outbox records, kept consistent by single SQLite transactions."""

    def __init__(self, store):
        self._store = store
        self._db = store.connection
        #: Whether the CSMS is unreachable right now (2.0.1 marks events that happened offline).
        self.offline: Callable[[], bool] = lambda: False
        # Changes the disk refused, oldest first, each with what to do once it is written; the
        # transactions as those changes leave them; and the kept samples not written yet.
        self._held: list[tuple[Write, Callable[[], None] | None]] = []
        self._shadow: dict[str, Transaction] = {}
        self._held_data: dict[str, list[dict]] = {}
        # The operation mode (2.1: "Idle", "ChargingOnly") of running transactions whose mode was set;
        # every record of the transaction carries it from then on (a queued record may go out much later).
        self._modes: dict[str, str] = {}
        self._modes_loaded = False  # those of the transactions the last run left open: read once, at the start
        add_held_writer = getattr(store, "add_held_writer", None)
        if add_held_writer is not None:
            add_held_writer(self.flush)

    @property
    def held(self) -> int:
        """How many changes wait in memory for the store to be writable again."""
        return len(self._held)

    def _marked(self, record: dict) -> dict:
        """``record`` with the unsynced mark of its ``timestamp`` while the clock is not synchronised."""
        mark = self._store.stamp_mark(record["timestamp"])
        return {**record, UNSYNCED: mark} if mark else record

    def _sample(self, sample: MeterSample | None) -> dict | None:
        """A sample as outbox data, marked like any stamp (it may be sent long after it was taken)."""
        return self._marked(sample_to_dict(sample)) if sample is not None else None

    def _row(self, ref: str) -> Transaction | None:
        if ref in self._shadow:
            return self._shadow[ref]
        row = self._db.execute(f"SELECT {_COLUMNS} FROM transactions WHERE ref = ?", (ref,)).fetchone()
        return Transaction(*row) if row else None

    def get(self, ref: str) -> Transaction | None:
        """The transaction ``ref``, or None."""
        return self._row(ref)

    def by_remote_id(self, remote_id: str) -> Transaction | None:
        """The transaction the CSMS knows as ``remote_id``."""
        held = [tx for tx in self._shadow.values() if tx.remote_id == str(remote_id)]
        if held:
            return held[0]
        row = self._db.execute(f"SELECT {_COLUMNS} FROM transactions WHERE remote_id = ?", (str(remote_id),)).fetchone()
        return Transaction(*row) if row and row[0] not in self._shadow else None

    def open_transactions(self) -> list[Transaction]:
        """Transactions that have not ended (after a crash: the ones to end now)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM transactions WHERE stopped_at IS NULL ORDER BY started_at").fetchall()
        found = {row[0]: Transaction(*row) for row in rows} | self._shadow
        if not self._modes_loaded:  # (the first call is the start's recovery: a resumed transaction keeps its mode)
            self._modes_loaded = True
            for ref in found:
                mode = self._store.get(_MODE_KEY + ref)
                if mode is not None:
                    self._modes.setdefault(ref, mode)
        return sorted((tx for tx in found.values() if tx.active), key=lambda tx: tx.started_at)

    def _write(self, write: Write, *, after: Transaction | None = None,
               written: Callable[[], None] | None = None) -> None:
        """Run ``write`` in one SQLite transaction; if the disk refuses it, hold it behind those held
        before (so order is kept), reads seeing ``after``; ``written`` runs once a held write is on disk."""
        if not self._held and not getattr(self._store, "writes_held", False):
            try:
                with self._store.transaction() as db:
                    write(db)
                return
            except StorageFault:
                pass  # the store told its health, whose retry flushes what is held here
        self._held.append((write, written))
        if after is not None:
            self._shadow[after.ref] = after

    def flush(self) -> None:
        """Write the held changes, oldest first, each in its own SQLite transaction; on StorageFault the
        rest stay held (the store's retry calls this again)."""
        while self._held:
            write, written = self._held[0]
            with self._store.transaction() as db:
                write(db)
            self._held.pop(0)
            if written is not None:
                written()
        self._shadow.clear()
        self._held_data.clear()

    def _record(self, tx: Transaction, payload: dict) -> tuple[dict, Transaction]:
        """The outbox record of a change of ``tx`` numbered with its seqNo (numbered when created, so a
        resend keeps its number), and the transaction after it."""
        record = {**payload, "ref": tx.ref, "seq_no": tx.seq_no, "offline": self.offline()}
        if tx.ref in self._modes:
            record["operation_mode"] = self._modes[tx.ref]
        return (self._marked(record) if "timestamp" in record else record), replace(tx, seq_no=tx.seq_no + 1)

    def _queue(self, db, kind: str, record: dict, after: Transaction) -> None:
        """Write the record's seqNo to its transaction and queue the record, in the caller's SQLite transaction."""
        db.execute("UPDATE transactions SET seq_no = ? WHERE ref = ?", (after.seq_no, after.ref))
        self._store.outbox.append(kind, record, group=after.ref)

    def can_begin(self) -> bool:
        """False while the store cannot be written: a transaction that could not be recorded must not start."""
        return not self._held and not getattr(self._store, "writes_held", False)

    def begin(self, *, evse_id: int, id_token: str | None, group_id: str | None, meter_start_Wh: float,
              started_at: float, remote_start_id: int | None = None, reservation_id: int | None = None,
              begin_sample: MeterSample | None = None, kept_sample: MeterSample | None = None,
              token_type: str | None = "ISO14443", trigger: str = "Authorized",
              ev_connected: bool = True) -> Transaction:
        """Record a new transaction and its TransactionStarted outbox record, atomically.

        ``id_token`` is None for a transaction that starts before authorization (at plug-in);
        :meth:`authorize` adds it later. ``ev_connected`` False: started before the cable.
        ``begin_sample`` goes with the start record, ``kept_sample`` is kept for the stop record's data.
        Raises StorageFault, recording nothing, while the store cannot be written: a transaction
        that could not be recorded must not start.
        """
        if not self.can_begin():
            raise StorageFault("the state store cannot be written: no transaction may start")
        tx = Transaction(str(uuid.uuid4()), evse_id, id_token or "", group_id, started_at, meter_start_Wh,
                         None, meter_start_Wh, remote_start_id=remote_start_id)
        record, after = self._record(tx, {
            "evse_id": evse_id, "id_token": id_token, "token_type": token_type, "timestamp": started_at,
            "meter_start_Wh": meter_start_Wh, "reservation_id": reservation_id,
            "remote_start_id": remote_start_id, "trigger": trigger, "ev_connected": ev_connected,
            "sample": self._sample(begin_sample),
        })
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO transactions (ref, evse_id, id_token, group_id, started_at, meter_start_Wh, "
                "last_meter_Wh, remote_start_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (tx.ref, evse_id, id_token or "", group_id, started_at, meter_start_Wh, meter_start_Wh,
                 remote_start_id),
            )
            self._queue(db, STARTED, record, after)
            if kept_sample is not None:
                db.execute("INSERT INTO transaction_data (ref, sample) VALUES (?, ?)",
                           (tx.ref, json.dumps(self._sample(kept_sample))))
        return self._row(tx.ref)

    def add_meter_values(self, ref: str, sample: MeterSample, *, energy_Wh: float | None) -> None:
        """Record a sampled meter value of a running transaction and queue it for the CSMS."""
        tx = self._row(ref)
        if tx is None:
            return
        last = tx.last_meter_Wh if energy_Wh is None else max(tx.last_meter_Wh, energy_Wh)
        record, after = self._record(replace(tx, last_meter_Wh=last),
                                     {"evse_id": tx.evse_id, "sample": self._sample(sample)})

        def write(db):
            db.execute("UPDATE transactions SET last_meter_Wh = MAX(last_meter_Wh, ?) WHERE ref = ?", (last, ref))
            self._queue(db, METER_VALUES, record, after)
        self._write(write, after=after)

    def add_status(self, ref: str, charging_state: str, *, timestamp: float, ev_connected: bool = True,
                   trigger: str = "ChargingStateChanged", sample: MeterSample | None = None,
                   deauthorized: StopReason | None = None) -> None:
        """Queue the state of a running transaction (Charging, SuspendedEV, ...): a change, or on request.

        ``trigger`` says why it is reported (2.0.1 triggerReason: ChargingStateChanged,
        CablePluggedIn, Trigger, ...); ``deauthorized``: its authorization ended for
        this reason while the transaction goes on.
        """
        tx = self._row(ref)
        if tx is None or not tx.active:
            return
        record, after = self._record(tx, {
            "evse_id": tx.evse_id, "charging_state": charging_state, "timestamp": timestamp,
            "ev_connected": ev_connected, "trigger": trigger, "sample": self._sample(sample),
            **({"deauthorized": deauthorized.value} if deauthorized else {})})
        self._write(lambda db: self._queue(db, STATUS, record, after), after=after)

    def operation_mode(self, ref: str) -> str | None:
        """The operation mode last recorded for running transaction ``ref``, or None if none was (the default)."""
        return self._modes.get(ref)

    def change_operation_mode(self, ref: str, mode: str, *, charging_state: str, timestamp: float,
                              ev_connected: bool = True) -> None:
        """The operation mode in force for running transaction ``ref`` became ``mode``: records from now on
        carry it, and a STATUS record with trigger OperationModeChanged reports the change."""
        tx = self._row(ref)
        if tx is None or not tx.active:
            return
        self._modes[ref] = mode
        self.add_status(ref, charging_state, timestamp=timestamp, ev_connected=ev_connected,
                        trigger=OPERATION_MODE_CHANGED)
        self._store.put(_MODE_KEY + ref, mode)  # a resume after a restart goes on with it

    def authorize(self, ref: str, *, id_token: str, token_type: str | None, group_id: str | None,
                  timestamp: float, charging_state: str, ev_connected: bool, trigger: str,
                  remote_start_id: int | None = None, reservation_id: int | None = None) -> Transaction | None:
        """Give a transaction that started without one its idToken, and queue the report, atomically."""
        tx = self._row(ref)
        if tx is None or not tx.active:
            return None
        given = replace(tx, id_token=id_token, group_id=group_id,
                        remote_start_id=tx.remote_start_id if remote_start_id is None else remote_start_id)
        record, after = self._record(given, {
            "evse_id": tx.evse_id, "charging_state": charging_state, "timestamp": timestamp,
            "ev_connected": ev_connected, "trigger": trigger, "id_token": id_token, "token_type": token_type,
            "remote_start_id": remote_start_id, "reservation_id": reservation_id})

        def write(db):
            db.execute("UPDATE transactions SET id_token = ?, group_id = ?, remote_start_id = ? WHERE ref = ?",
                       (id_token, group_id, after.remote_start_id, ref))
            self._queue(db, STATUS, record, after)
        self._write(write, after=after)
        return self._row(ref)

    def add_transaction_data(self, ref: str, sample: MeterSample) -> None:
        """Keep a sample for the transactionData of this transaction's stop record."""
        data = self._sample(sample)
        held = self._held_data.setdefault(ref, [])

        def written() -> None:  # on disk now: the table has it (unless the stop record took it already)
            held[:] = [d for d in held if d is not data]
        self._write(lambda db: db.execute("INSERT INTO transaction_data (ref, sample) VALUES (?, ?)",
                                          (ref, json.dumps(data))), written=written)
        if self._held and self._held[-1][1] is written:
            held.append(data)  # not on disk yet: the stop record must still see it

    def _transaction_data(self, ref: str) -> list[dict]:
        rows = self._db.execute("SELECT sample FROM transaction_data WHERE ref = ? ORDER BY id", (ref,)).fetchall()
        return [json.loads(row[0]) for row in rows] + self._held_data.get(ref, [])

    def end(self, ref: str, *, meter_stop_Wh: float, stopped_at: float, reason: StopReason,
            stop_id_token: str | None = None, end_sample: MeterSample | None = None,
            stop_token_type: str | None = None, ended_by: StopReason | None = None,
            ev_connected: bool = True) -> Transaction | None:
        """End a transaction once: record the stop and its TransactionEnded outbox record, atomically.

        Returns None (and writes nothing) if it had already ended, so a retry
        after a crash can never report a second stop. The record's ``reason`` is
        one every version knows (``reason.basic``); a finer 2.0.1 reason goes in
        ``detail``. ``ended_by`` is what ended it when that is not the reason
        itself (the unplug that ends a transaction stopped by a tap before); ``ev_connected``: whether
        the cable is still plugged in.
        """
        tx = self._row(ref)
        if tx is None or not tx.active:
            return None
        meter_stop = max(meter_stop_Wh, tx.meter_start_Wh)  # a meter swap must not bill negative energy
        data = self._transaction_data(ref) + ([self._sample(end_sample)] if end_sample else [])
        self._held_data.pop(ref, None)  # they go with the stop record now
        stopped = replace(tx, stopped_at=stopped_at, meter_stop_Wh=meter_stop, stop_reason=reason.basic.value)
        record, after = self._record(stopped, {
            "evse_id": tx.evse_id, "id_token": stop_id_token, "timestamp": stopped_at,
            "meter_stop_Wh": meter_stop, "reason": reason.basic.value, "transaction_data": data,
            "ev_connected": ev_connected,
            **({"detail": reason.value} if reason.basic is not reason else {}),
            **({"token_type": stop_token_type} if stop_id_token and stop_token_type else {}),
            **({"ended_by": ended_by.value} if ended_by else {}),
        })

        def write(db):
            db.execute("UPDATE transactions SET stopped_at = ?, meter_stop_Wh = ?, stop_reason = ? WHERE ref = ?",
                       (stopped_at, meter_stop, reason.basic.value, ref))
            self._queue(db, ENDED, record, after)
            db.execute("DELETE FROM transaction_data WHERE ref = ?", (ref,))
        self._write(write, after=after)
        if self._modes.pop(ref, None) is not None:  # the stop record has it; nothing more goes out for it
            self._store.delete(_MODE_KEY + ref)
        return self._row(ref)

    def set_remote_id(self, ref: str, remote_id: str) -> None:
        """Remember the transactionId the CSMS assigned (1.6 StartTransaction.conf)."""
        tx = self._row(ref)
        self._write(lambda db: db.execute("UPDATE transactions SET remote_id = ? WHERE ref = ?", (str(remote_id), ref)),
                    after=replace(tx, remote_id=str(remote_id)) if tx else None)

    def prune(self, *, keep: int = 1000) -> None:
        """Forget the oldest ended transactions whose records have all been delivered (not while the
        store cannot be written: it is housekeeping)."""
        if not self.can_begin():
            return
        try:
            with self._store.transaction() as db:
                db.execute(
                    "DELETE FROM transactions WHERE stopped_at IS NOT NULL AND ref NOT IN "
                    "(SELECT grp FROM outbox WHERE grp IS NOT NULL) AND ref NOT IN "
                    "(SELECT ref FROM transactions ORDER BY started_at DESC LIMIT ?)", (keep,))
        except StorageFault:
            pass  # tried again at the next start


_JOURNAL_RECORDS = (STARTED, METER_VALUES, STATUS, ENDED)


def correct_stamps(store, correction: ClockCorrection) -> int:
    """Rewrite, in one SQLite transaction, the stamps the journal recorded before the clock was synchronised.

    Queued records, kept samples, and the start and stop times of the
    transactions whose queued records were corrected. Returns the number of
    queued records rewritten.
    """
    corrected = 0
    with store.transaction() as db:
        for item in store.outbox.pending():
            payload = item.payload
            before = payload.get("timestamp")
            if item.action not in _JOURNAL_RECORDS or not correction.rewrite(payload):
                continue
            store.outbox.update_payload(item.id, payload)
            corrected += 1
            column = {STARTED: "started_at", ENDED: "stopped_at"}.get(item.action)
            if column is not None and before is not None and payload["timestamp"] != before:
                db.execute(f"UPDATE transactions SET {column} = ? WHERE ref = ? AND {column} = ?",
                           (payload["timestamp"], payload["ref"], before))
        rows = db.execute("SELECT id, sample FROM transaction_data WHERE instr(sample, ?) > 0",
                          (f'"{UNSYNCED}"',)).fetchall()
        for row_id, text in rows:
            sample = json.loads(text)
            if correction.rewrite(sample):
                db.execute("UPDATE transaction_data SET sample = ? WHERE id = ?", (json.dumps(sample), row_id))
    return corrected
