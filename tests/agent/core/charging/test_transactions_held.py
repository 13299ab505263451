"""The transaction journal while the state store cannot be written: no new transaction, a running one's
changes held in memory in order (reads see them), written once and in order when the store takes writes."""

from __future__ import annotations

import pytest

from agent.core.charging.model import MeterSample, Sample, StopReason
from agent.core.charging.transactions import ENDED, METER_VALUES, STARTED, TransactionJournal
from agent.runtime.storage_health import StorageFault


def sample(t: float, wh: float) -> MeterSample:
    return MeterSample(t, (Sample(value=wh, measurand="Energy.Active.Import.Register", unit="Wh"),))


def refuse_writes(store, refuse: bool = True) -> None:
    store.connection.execute(f"PRAGMA query_only = {'ON' if refuse else 'OFF'}")


def test_journal_holds_a_running_transaction_in_order_and_writes_it_once(store):
    journal = TransactionJournal(store)
    tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=1.0)
    journal.add_meter_values(tx.ref, sample(2.0, 10.0), energy_Wh=10.0)
    refuse_writes(store)
    journal.add_meter_values(tx.ref, sample(3.0, 20.0), energy_Wh=20.0)  # refused: held, no exception
    journal.add_transaction_data(tx.ref, sample(3.0, 20.0))
    journal.add_meter_values(tx.ref, sample(4.0, 30.0), energy_Wh=30.0)
    ended = journal.end(tx.ref, meter_stop_Wh=35.0, stopped_at=5.0, reason=StopReason.LOCAL)
    assert ended.stopped_at == 5.0 and ended.last_meter_Wh == 30.0 and journal.held == 4
    assert journal.end(tx.ref, meter_stop_Wh=40.0, stopped_at=6.0, reason=StopReason.LOCAL) is None  # once
    assert journal.open_transactions() == []
    assert [i.action for i in store.outbox.pending()] == [STARTED, METER_VALUES]  # only what was written
    with pytest.raises(StorageFault):
        journal.begin(evse_id=2, id_token="B", group_id=None, meter_start_Wh=0.0, started_at=4.5)

    refuse_writes(store, False)
    assert store.health.retry_now() is True
    records = [(i.action, i.payload["seq_no"]) for i in store.outbox.pending()]
    assert records == [(STARTED, 0), (METER_VALUES, 1), (METER_VALUES, 2), (METER_VALUES, 3), (ENDED, 4)]
    [stop] = store.outbox.pending(group=tx.ref)[-1:]
    assert [d["timestamp"] for d in stop.payload["transaction_data"]] == [3.0]
    assert journal.held == 0 and journal.get(tx.ref).meter_stop_Wh == 35.0
    assert journal.can_begin()


def test_journal_keeps_what_is_still_refused_for_the_next_retry(store):
    journal = TransactionJournal(store)
    tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=1.0)
    refuse_writes(store)
    journal.add_meter_values(tx.ref, sample(2.0, 10.0), energy_Wh=10.0)
    assert store.health.retry_now() is False and journal.held == 1
    journal.set_remote_id(tx.ref, "77")
    assert journal.by_remote_id("77").ref == tx.ref  # reads see what is held
    refuse_writes(store, False)
    assert store.health.retry_now() is True and journal.held == 0
    assert journal.by_remote_id("77").ref == tx.ref
