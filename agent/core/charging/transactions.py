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
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Callable

from agent.core.charging.model import MeterSample, Sample, StopReason
from agent.runtime.clock import UNSYNCED, ClockCorrection

STARTED = "TransactionStarted"
METER_VALUES = "TransactionMeterValues"
# A change 1.6 has no message for (2.0.1 reports each as TransactionEvent Updated): the charging
# state, an idToken given after the start, or a report the CSMS asked for (``trigger``).
STATUS = "TransactionStatus"
ENDED = "TransactionEnded"


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

    def _marked(self, record: dict) -> dict:
        """``record`` with the unsynced mark of its ``timestamp`` while the clock is not synchronised."""
        mark = self._store.stamp_mark(record["timestamp"])
        return {**record, UNSYNCED: mark} if mark else record

    def _sample(self, sample: MeterSample | None) -> dict | None:
        """A sample as outbox data, marked like any stamp (it may be sent long after it was taken)."""
        return self._marked(sample_to_dict(sample)) if sample is not None else None

    def _row(self, ref: str) -> Transaction | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM transactions WHERE ref = ?", (ref,)).fetchone()
        return Transaction(*row) if row else None

    def get(self, ref: str) -> Transaction | None:
        """The transaction ``ref``, or None."""
        return self._row(ref)

    def by_remote_id(self, remote_id: str) -> Transaction | None:
        """The transaction the CSMS knows as ``remote_id``."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM transactions WHERE remote_id = ?", (str(remote_id),)).fetchone()
        return Transaction(*row) if row else None

    def open_transactions(self) -> list[Transaction]:
        """Transactions that have not ended (after a crash: the ones to end now)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM transactions WHERE stopped_at IS NULL ORDER BY started_at").fetchall()
        return [Transaction(*row) for row in rows]

    def _append(self, db, kind: str, ref: str, payload: dict) -> None:
        """Queue a record for ``ref`` with its seqNo: numbered when created, so a resend keeps its number."""
        seq_no = db.execute("SELECT seq_no FROM transactions WHERE ref = ?", (ref,)).fetchone()[0]
        db.execute("UPDATE transactions SET seq_no = seq_no + 1 WHERE ref = ?", (ref,))
        record = {**payload, "ref": ref, "seq_no": seq_no, "offline": self.offline()}
        self._store.outbox.append(kind, self._marked(record) if "timestamp" in record else record, group=ref)

    def begin(self, *, evse_id: int, id_token: str | None, group_id: str | None, meter_start_Wh: float,
              started_at: float, remote_start_id: int | None = None, reservation_id: int | None = None,
              begin_sample: MeterSample | None = None, token_type: str | None = "ISO14443",
              trigger: str = "Authorized", ev_connected: bool = True) -> Transaction:
        """Record a new transaction and its TransactionStarted outbox record, atomically.

        ``id_token`` is None for a transaction that starts before authorization (at plug-in);
        :meth:`authorize` adds it later. ``ev_connected`` False: started before the cable.
        """
        ref = str(uuid.uuid4())
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO transactions (ref, evse_id, id_token, group_id, started_at, meter_start_Wh, "
                "last_meter_Wh, remote_start_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (ref, evse_id, id_token or "", group_id, started_at, meter_start_Wh, meter_start_Wh,
                 remote_start_id),
            )
            self._append(db, STARTED, ref, {
                "evse_id": evse_id, "id_token": id_token, "token_type": token_type, "timestamp": started_at,
                "meter_start_Wh": meter_start_Wh, "reservation_id": reservation_id,
                "remote_start_id": remote_start_id, "trigger": trigger, "ev_connected": ev_connected,
                "sample": self._sample(begin_sample),
            })
            if begin_sample is not None:
                db.execute("INSERT INTO transaction_data (ref, sample) VALUES (?, ?)",
                           (ref, json.dumps(self._sample(begin_sample))))
        return self._row(ref)

    def add_meter_values(self, ref: str, sample: MeterSample, *, energy_Wh: float | None) -> None:
        """Record a sampled meter value of a running transaction and queue it for the CSMS."""
        with self._store.transaction() as db:
            if energy_Wh is not None:
                db.execute("UPDATE transactions SET last_meter_Wh = MAX(last_meter_Wh, ?) WHERE ref = ?",
                           (energy_Wh, ref))
            tx = self._row(ref)
            if tx is None:
                return
            self._append(db, METER_VALUES, ref, {"evse_id": tx.evse_id, "sample": self._sample(sample)})

    def add_status(self, ref: str, charging_state: str, *, timestamp: float, ev_connected: bool = True,
                   trigger: str = "ChargingStateChanged", sample: MeterSample | None = None,
                   deauthorized: StopReason | None = None) -> None:
        """Queue the state of a running transaction (Charging, SuspendedEV, ...): a change, or on request.

        ``trigger`` says why it is reported (2.0.1 triggerReason: ChargingStateChanged,
        CablePluggedIn, Trigger, ...); ``deauthorized``: its authorization ended for
        this reason while the transaction goes on.
        """
        with self._store.transaction() as db:
            tx = self._row(ref)
            if tx is not None and tx.active:
                self._append(db, STATUS, ref, {
                    "evse_id": tx.evse_id, "charging_state": charging_state, "timestamp": timestamp,
                    "ev_connected": ev_connected, "trigger": trigger,
                    "sample": self._sample(sample),
                    **({"deauthorized": deauthorized.value} if deauthorized else {})})

    def authorize(self, ref: str, *, id_token: str, token_type: str | None, group_id: str | None,
                  timestamp: float, charging_state: str, ev_connected: bool, trigger: str,
                  remote_start_id: int | None = None, reservation_id: int | None = None) -> Transaction | None:
        """Give a transaction that started without one its idToken, and queue the report, atomically."""
        with self._store.transaction() as db:
            tx = self._row(ref)
            if tx is None or not tx.active:
                return None
            db.execute("UPDATE transactions SET id_token = ?, group_id = ?, "
                       "remote_start_id = coalesce(?, remote_start_id) WHERE ref = ?",
                       (id_token, group_id, remote_start_id, ref))
            self._append(db, STATUS, ref, {
                "evse_id": tx.evse_id, "charging_state": charging_state, "timestamp": timestamp,
                "ev_connected": ev_connected, "trigger": trigger, "id_token": id_token, "token_type": token_type,
                "remote_start_id": remote_start_id, "reservation_id": reservation_id})
        return self._row(ref)

    def add_transaction_data(self, ref: str, sample: MeterSample) -> None:
        """Keep a sample for the transactionData of this transaction's stop record."""
        with self._store.transaction() as db:
            db.execute("INSERT INTO transaction_data (ref, sample) VALUES (?, ?)",
                       (ref, json.dumps(self._sample(sample))))

    def _transaction_data(self, ref: str) -> list[dict]:
        rows = self._db.execute("SELECT sample FROM transaction_data WHERE ref = ? ORDER BY id", (ref,)).fetchall()
        return [json.loads(row[0]) for row in rows]

    def end(self, ref: str, *, meter_stop_Wh: float, stopped_at: float, reason: StopReason,
            stop_id_token: str | None = None, end_sample: MeterSample | None = None,
            stop_token_type: str | None = None, ended_by: StopReason | None = None) -> Transaction | None:
        """End a transaction once: record the stop and its TransactionEnded outbox record, atomically.

        Returns None (and writes nothing) if it had already ended, so a retry
        after a crash can never report a second stop. The record's ``reason`` is
        one every version knows (``reason.basic``); a finer 2.0.1 reason goes in
        ``detail``. ``ended_by`` is what ended it when that is not the reason
        itself (the unplug that ends a transaction stopped by a tap before).
        """
        with self._store.transaction() as db:
            tx = self._row(ref)
            if tx is None or not tx.active:
                return None
            meter_stop = max(meter_stop_Wh, tx.meter_start_Wh)  # a meter swap must not bill negative energy
            db.execute("UPDATE transactions SET stopped_at = ?, meter_stop_Wh = ?, stop_reason = ? WHERE ref = ?",
                       (stopped_at, meter_stop, reason.basic.value, ref))
            data = self._transaction_data(ref) + ([self._sample(end_sample)] if end_sample else [])
            self._append(db, ENDED, ref, {
                "evse_id": tx.evse_id, "id_token": stop_id_token, "timestamp": stopped_at,
                "meter_stop_Wh": meter_stop, "reason": reason.basic.value, "transaction_data": data,
                **({"detail": reason.value} if reason.basic is not reason else {}),
                **({"token_type": stop_token_type} if stop_id_token and stop_token_type else {}),
                **({"ended_by": ended_by.value} if ended_by else {}),
            })
            db.execute("DELETE FROM transaction_data WHERE ref = ?", (ref,))
        return self._row(ref)

    def set_remote_id(self, ref: str, remote_id: str) -> None:
        """Remember the transactionId the CSMS assigned (1.6 StartTransaction.conf)."""
        with self._store.transaction() as db:
            db.execute("UPDATE transactions SET remote_id = ? WHERE ref = ?", (str(remote_id), ref))

    def prune(self, *, keep: int = 1000) -> None:
        """Forget the oldest ended transactions whose records have all been delivered."""
        with self._store.transaction() as db:
            db.execute(
                "DELETE FROM transactions WHERE stopped_at IS NOT NULL AND ref NOT IN "
                "(SELECT grp FROM outbox WHERE grp IS NOT NULL) AND ref NOT IN "
                "(SELECT ref FROM transactions ORDER BY started_at DESC LIMIT ?)", (keep,))


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
