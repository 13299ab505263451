"""The transaction journal: records and their outbox entries together; pruning keeps what is undelivered."""

from agent.core.charging.model import StopReason
from agent.core.charging.transactions import ENDED, STARTED, TransactionJournal
from agent.runtime.store import StateStore


def test_journal_begin_and_end_queue_their_records_once(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        journal = TransactionJournal(store)
        tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=10.0, started_at=1.0)
        assert journal.end(tx.ref, meter_stop_Wh=25.0, stopped_at=2.0, reason=StopReason.LOCAL).meter_stop_Wh == 25.0
        assert journal.end(tx.ref, meter_stop_Wh=30.0, stopped_at=3.0, reason=StopReason.LOCAL) is None  # once
        assert [(i.action, i.payload["seq_no"]) for i in store.outbox.pending()] == [(STARTED, 0), (ENDED, 1)]


def test_journal_prune_keeps_the_newest_and_the_undelivered(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        journal = TransactionJournal(store)
        refs = []
        for i in range(5):
            tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=float(i))
            journal.end(tx.ref, meter_stop_Wh=1.0, stopped_at=i + 0.5, reason=StopReason.LOCAL)
            refs.append(tx.ref)
        for item in store.outbox.pending():
            if item.group != refs[0]:  # the oldest is still waiting for the CSMS
                store.outbox.remove(item.id)
        journal.prune(keep=2)
        kept = [ref for ref in refs if journal.get(ref) is not None]
        assert kept == [refs[0], refs[3], refs[4]]
