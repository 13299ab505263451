"""Hardware faults the CSMS must hear about, queued durably so that being offline loses none.

A fault raised or cleared becomes a version-neutral outbox record (``FaultEvent``) in the lane of
records that are not about a transaction (:mod:`agent.protocol.common.outbox`), written whether a
CSMS is connected or not: the 2.0.1 codec words it as NotifyEvent (the Problem variable of the EVSE
or of the station, with the time the fault changed), 1.6 has no message for it (its
StatusNotification carries the error code) and discards it.

Which changes are queued follows OCPP 2.0.1 MonitoringCtrlr.OfflineQueuingSeverity: online, every
one; offline, those whose severity number is at most that setting (0 Danger ... 9 Debug). A fault
that stops charging is a HardwareFailure (1), any other a Warning (6), so with the default (4) the
first are queued offline and the others are not. The clearing of a fault whose raising was queued
is always queued, so the CSMS never keeps a problem that is gone. Event ids come from one counter
in the store, shared with the 2.0.1 adapter's other NotifyEvents, so they stay unique across
restarts. A record stamped before the clock was first synchronised keeps the ``unsynced`` mark;
:func:`correct_stamps` puts it in CSMS time at the synchronisation.
"""

from __future__ import annotations

from agent.runtime.clock import UNSYNCED, ClockCorrection
from hal.faults import FAULTS

FAULT_EVENT = "FaultEvent"

#: OCPP 2.0.1 severity numbers of hardware faults.
HARDWARE_FAILURE = 1
WARNING = 6

#: The last NotifyEvent eventId used (the key predates this module: the 2.0.1 adapter kept it).
EVENT_ID_KEY = "ocpp201:last_event_id"
#: [evse id (0: the station), code] of every fault whose raising was queued and not yet its clearing.
_RAISED_KEY = "fault_reports:raised"


def severity(code: str) -> int:
    """The OCPP severity of a fault code: HardwareFailure if it stops charging (or is unknown), else Warning."""
    spec = FAULTS.get(code)
    return WARNING if spec is not None and not spec.stops_charging else HARDWARE_FAILURE


def next_event_id(store) -> int:
    """A new NotifyEvent eventId, durable before it is used."""
    event_id = int(store.get(EVENT_ID_KEY, 0)) + 1
    store.put(EVENT_ID_KEY, event_id)
    return event_id


def record_fault_event(store, *, evse_id: int | None, code: str, active: bool, problem: bool, timestamp: float,
                       info: str = "", offline: bool, queuing_severity: int) -> bool:
    """Queue the report of a fault raised (``active``) or cleared, as OfflineQueuingSeverity says.

    ``problem``: whether the EVSE (None: the station) still has any fault after this change.
    Returns whether it was queued. Raises StoreError if the store cannot take it.
    """
    key = [evse_id or 0, code]
    raised = [list(k) for k in store.get(_RAISED_KEY, [])]
    if offline and severity(code) > queuing_severity and (active or key not in raised):
        return False
    mark = store.stamp_mark(timestamp)
    with store.transaction():  # the record, its event id and the raised set: all or nothing
        payload = {"event_id": next_event_id(store), "evse_id": evse_id, "code": code, "active": active,
                   "problem": problem, "timestamp": timestamp, "info": info, "severity": severity(code),
                   **({UNSYNCED: mark} if mark else {})}
        store.outbox.append(FAULT_EVENT, payload)
        if active and key not in raised:
            raised.append(key)
        elif not active and key in raised:
            raised.remove(key)
        store.put(_RAISED_KEY, raised)
    return True


def queued_raises(store) -> set[tuple[int | None, str]]:
    """(evse id or None, code) of every fault whose raising still waits in the outbox."""
    return {(item.payload["evse_id"], item.payload["code"]) for item in store.outbox.pending()
            if item.action == FAULT_EVENT and item.payload["active"]}


def correct_stamps(store, correction: ClockCorrection) -> int:
    """Put the queued fault reports stamped before the clock was synchronised in CSMS time; returns how many."""
    corrected = 0
    with store.transaction():
        for item in store.outbox.pending():
            if item.action == FAULT_EVENT and correction.rewrite(item.payload):
                store.outbox.update_payload(item.id, item.payload)
                corrected += 1
    return corrected
