"""Records made before the station clock was synchronised get CSMS time at the first synchronisation.

The journal and the security events mark such stamps through the store; the
correction rewrites the queued records, the kept samples, the transactions'
start and stop times and the security log, and nothing made after it.
"""

from __future__ import annotations

import json

import pytest

from agent.core.charging import transactions
from agent.core.charging.model import MeterSample, Sample, StopReason
from agent.core.charging.transactions import ENDED, METER_VALUES, STARTED, STATUS, TransactionJournal
from agent.core.management import security_events
from agent.core.management.security_events import SECURITY_EVENT, STARTUP, read_security_log, record_security_event
from agent.runtime.clock import UNSYNCED, Clock, format_iso
from agent.runtime.store import StateStore

TRUE_START = 1_780_000_000.0
THREE_DAYS = 3 * 24 * 3600.0


class Board:
    """The board's clocks: wall clock 3 days behind at boot, steppable; monotonic clock from 100 s."""

    def __init__(self) -> None:
        self.mono = 100.0
        self.error_s = -THREE_DAYS

    def wall(self) -> float:
        return TRUE_START + self.mono - 100.0 + self.error_s

    def true_time(self, mono: float | None = None) -> float:
        return TRUE_START + (self.mono if mono is None else mono) - 100.0


@pytest.fixture
def rig(tmp_path):
    board = Board()
    clock = Clock(wall=board.wall, monotonic=lambda: board.mono, boot_id="boot-A")
    with StateStore(tmp_path / "state.sqlite", stamp_mark=clock.unsynced_mark) as store:
        def correct(correction):
            with store.transaction():
                transactions.correct_stamps(store, correction)
                security_events.correct_stamps(store, correction)

        clock.add_listener(correct)
        yield board, clock, store, TransactionJournal(store)


def sample(clock: Clock, energy: float) -> MeterSample:
    return MeterSample(clock.time(), (Sample(value=energy, measurand="Energy.Active.Import.Register", unit="Wh"),))


def test_offline_session_before_the_sync_is_sent_in_csms_time(rig):
    board, clock, store, journal = rig
    record_security_event(store, STARTUP, timestamp=clock.time())
    tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=clock.time(),
                       begin_sample=sample(clock, 0.0), kept_sample=sample(clock, 0.0))
    board.mono += 60
    journal.add_meter_values(tx.ref, sample(clock, 100.0), energy_Wh=100.0)
    journal.add_transaction_data(tx.ref, sample(clock, 100.0))
    board.mono += 30
    board.error_s = 0.0  # NTP steps the board clock while the CSMS is still unreachable
    journal.add_status(tx.ref, "SuspendedEV", timestamp=clock.time())
    board.mono += 30
    journal.end(tx.ref, meter_stop_Wh=200.0, stopped_at=clock.time(), reason=StopReason.LOCAL,
                end_sample=sample(clock, 200.0))
    assert all(UNSYNCED in json.dumps(item.payload) for item in store.outbox.pending())

    board.mono += 600  # the CSMS comes up ten minutes later
    clock.sync(format_iso(board.true_time()))

    items = {item.action: item.payload for item in store.outbox.pending()}
    assert "unsynced" not in json.dumps(items)
    assert items[SECURITY_EVENT]["timestamp"] == pytest.approx(board.true_time(100.0), abs=0.002)
    assert items[STARTED]["timestamp"] == pytest.approx(board.true_time(100.0), abs=0.002)
    assert items[STARTED]["sample"]["timestamp"] == pytest.approx(board.true_time(100.0), abs=0.002)
    assert items[METER_VALUES]["sample"]["timestamp"] == pytest.approx(board.true_time(160.0), abs=0.002)
    assert items[STATUS]["timestamp"] == pytest.approx(board.true_time(190.0), abs=0.002)
    assert items[ENDED]["timestamp"] == pytest.approx(board.true_time(220.0), abs=0.002)
    assert [d["timestamp"] for d in items[ENDED]["transaction_data"]] == [
        pytest.approx(board.true_time(m), abs=0.002) for m in (100.0, 160.0, 220.0)]
    stored = journal.get(tx.ref)
    assert stored.started_at == pytest.approx(board.true_time(100.0), abs=0.002)
    assert stored.stopped_at == pytest.approx(board.true_time(220.0), abs=0.002)
    (entry,) = read_security_log(store)
    assert entry.timestamp == pytest.approx(board.true_time(100.0), abs=0.002)


def test_samples_kept_before_the_sync_are_corrected_for_a_stop_after_it(rig):
    board, clock, store, journal = rig
    tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=clock.time())
    board.mono += 10
    journal.add_transaction_data(tx.ref, sample(clock, 50.0))
    board.mono += 10
    clock.sync(format_iso(board.true_time()))
    for item in store.outbox.pending():
        store.outbox.remove(item.id)  # delivered
    board.mono += 10
    board.error_s = 0.0
    journal.end(tx.ref, meter_stop_Wh=80.0, stopped_at=clock.time(), reason=StopReason.LOCAL)
    (ended,) = store.outbox.pending()
    assert ended.payload["timestamp"] == pytest.approx(board.true_time(), abs=0.002)
    assert [d["timestamp"] for d in ended.payload["transaction_data"]] == [
        pytest.approx(board.true_time(110.0), abs=0.002)]
    assert UNSYNCED not in json.dumps(ended.payload)


def test_records_made_after_the_sync_are_neither_marked_nor_moved(rig):
    board, clock, store, journal = rig
    clock.sync(format_iso(board.true_time()))
    board.mono += 5
    now = clock.time()
    tx = journal.begin(evse_id=1, id_token="A", group_id=None, meter_start_Wh=0.0, started_at=now)
    record_security_event(store, STARTUP, timestamp=now)
    board.mono += 300
    clock.sync(format_iso(board.true_time()))
    assert [item.payload["timestamp"] for item in store.outbox.pending()] == [now, now]
    assert journal.get(tx.ref).started_at == now
    assert "unsynced" not in json.dumps([item.payload for item in store.outbox.pending()])


def test_records_of_an_earlier_boot_keep_their_stamps(rig):
    board, clock, store, journal = rig
    record = {"type": STARTUP, "timestamp": 12.0, "tech_info": None, UNSYNCED: {"boot": "boot-OLD", "mono": 3.0}}
    store.outbox.append(SECURITY_EVENT, record)
    clock.sync(format_iso(board.true_time()))
    (item,) = store.outbox.pending()
    assert item.payload == {"type": STARTUP, "timestamp": 12.0, "tech_info": None}
