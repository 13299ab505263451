"""The operation mode of a transaction's records (2.1 transactionInfo.operationMode): captured by the journal when a
record is created, so a record sent later from the queue says the mode of its time; 2.1 reports a change with
triggerReason OperationModeChanged, 2.0.1 sends nothing for it and no operationMode anywhere."""

from types import SimpleNamespace

from agent.core.charging.model import StopReason
from agent.core.charging.transactions import TransactionJournal
from agent.protocol.v201.codec import TransactionCodec
from agent.protocol.v21.codec import TransactionCodec21
from agent.runtime.store import StateStore


def _queued_session(store) -> list:
    """Records of one transaction: Idle from the second record, ChargingOnly again before it ends; none sent yet."""
    journal = TransactionJournal(store)
    tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=1.0)
    journal.change_operation_mode(tx.ref, "Idle", charging_state="Charging", timestamp=2.0)
    journal.add_status(tx.ref, "SuspendedEVSE", timestamp=2.1)
    journal.change_operation_mode(tx.ref, "ChargingOnly", charging_state="SuspendedEVSE", timestamp=3.0)
    journal.end(tx.ref, meter_stop_Wh=5.0, stopped_at=4.0, reason=StopReason.LOCAL)
    return store.outbox.pending(), journal


def test_v21_each_event_says_the_mode_recorded_with_it_and_a_change_is_operation_mode_changed(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        items, journal = _queued_session(store)
        codec = TransactionCodec21(journal=journal, authorizer=None,
                                   station=SimpleNamespace(transaction_limit=lambda ref: None))
        sent = [codec.encode(item) for item in items]
        assert [(r.event_type, r.trigger_reason, r.transaction_info["operation_mode"]) for r in sent] == [
            ("Started", "Authorized", "ChargingOnly"), ("Updated", "OperationModeChanged", "Idle"),
            ("Updated", "ChargingStateChanged", "Idle"), ("Updated", "OperationModeChanged", "ChargingOnly"),
            ("Ended", "StopAuthorized", "ChargingOnly")]
        assert [r.seq_no for r in sent] == [0, 1, 2, 3, 4]


def test_v201_sends_no_operation_mode_and_nothing_for_its_change(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        items, journal = _queued_session(store)
        codec = TransactionCodec(journal=journal, authorizer=None, station=SimpleNamespace())
        sent = [codec.encode(item) for item in items]
        assert [r and r.trigger_reason for r in sent] == [
            "Authorized", None, "ChargingStateChanged", None, "StopAuthorized"]
        assert all("operation_mode" not in r.transaction_info for r in sent if r is not None)


def test_v21_a_transaction_resumed_after_a_restart_keeps_its_mode_until_it_ends(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        journal = TransactionJournal(store)
        tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=1.0)
        journal.change_operation_mode(tx.ref, "Idle", charging_state="Charging", timestamp=2.0)
    with StateStore(tmp_path / "state.sqlite") as store:  # the next run (Reset ImmediateAndResume)
        journal = TransactionJournal(store)
        assert [t.ref for t in journal.open_transactions()] == [tx.ref]  # the start's recovery
        journal.add_status(tx.ref, "SuspendedEVSE", timestamp=3.0, trigger="TxResumed")
        journal.end(tx.ref, meter_stop_Wh=5.0, stopped_at=4.0, reason=StopReason.LOCAL)
        codec = TransactionCodec21(journal=journal, authorizer=None,
                                   station=SimpleNamespace(transaction_limit=lambda ref: None))
        modes = [codec.encode(item).transaction_info["operation_mode"] for item in store.outbox.pending()]
        assert modes == ["ChargingOnly", "Idle", "Idle", "Idle"]
        assert journal.operation_mode(tx.ref) is None and store.get("transaction_operation_mode:" + tx.ref) is None
