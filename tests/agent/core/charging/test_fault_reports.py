"""Fault reports: queued durably, offline as OfflineQueuingSeverity says, a told raise always cleared."""

from agent.core.charging.fault_reports import (
    FAULT_EVENT, HARDWARE_FAILURE, WARNING, correct_stamps, queued_raises, record_fault_event, severity)
from agent.runtime.clock import UNSYNCED, ClockCorrection


def record(store, code, *, active, offline, queuing_severity=4, evse_id=1, timestamp=1000.0):
    return record_fault_event(store, evse_id=evse_id, code=code, active=active, problem=active, timestamp=timestamp,
                              offline=offline, queuing_severity=queuing_severity)


def queued(store):
    return [(i.payload["code"], i.payload["active"]) for i in store.outbox.pending() if i.action == FAULT_EVENT]


def test_fault_reports_severity_of_a_fault_that_stops_charging_and_of_a_warning():
    assert severity("rcd-trip") == HARDWARE_FAILURE and severity("reader-offline") == WARNING
    assert severity("no-such-code") == HARDWARE_FAILURE  # unknown: taken seriously


def test_fault_reports_online_every_change_is_queued_with_its_own_event_id(store):
    assert record(store, "reader-offline", active=True, offline=False)
    assert record(store, "reader-offline", active=False, offline=False)
    ids = [i.payload["event_id"] for i in store.outbox.pending()]
    assert queued(store) == [("reader-offline", True), ("reader-offline", False)] and ids == sorted(set(ids))


def test_fault_reports_offline_only_up_to_the_offline_queuing_severity(store):
    assert record(store, "rcd-trip", active=True, offline=True, queuing_severity=4)
    assert not record(store, "reader-offline", active=True, offline=True, queuing_severity=4)
    assert record(store, "rcd-trip", active=False, offline=True, queuing_severity=0)  # its raise was told
    assert queued(store) == [("rcd-trip", True), ("rcd-trip", False)]


def test_fault_reports_the_clearing_of_a_told_raise_is_queued_whatever_the_severity(store):
    record(store, "reader-offline", active=True, offline=False)
    assert record(store, "reader-offline", active=False, offline=True, queuing_severity=0)
    assert not record(store, "reader-offline", active=True, offline=True, queuing_severity=0)
    assert not record(store, "reader-offline", active=False, offline=True, queuing_severity=0)  # its raise untold
    assert queued(store) == [("reader-offline", True), ("reader-offline", False)]


def test_fault_reports_queued_raises_and_clock_correction(store):
    store.stamp_mark = lambda timestamp: {"boot": "b1", "mono": 5.0}
    record(store, "rcd-trip", active=True, offline=True, evse_id=None)
    assert queued_raises(store) == {(None, "rcd-trip")}
    assert correct_stamps(store, ClockCorrection(boot="b1", reference=2000.0, error_s=0.0)) == 1
    (item,) = store.outbox.pending()
    assert item.payload["timestamp"] == 2005.0 and UNSYNCED not in item.payload
