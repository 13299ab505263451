"""Security events the CSMS must eventually hear about (OCPP 2.0.1 block A), queued durably.

They go through the same outbox as transaction records, so an event that
happens offline (a reboot, a clock jump) is delivered once the station is back.
Each event is also kept in the security log (table ``security_log`` of the state
store): the outbox forgets an event once delivered, the security log keeps the
last SECURITY_LOG_LIMIT of them for GetLog(SecurityLog) (``agent.core.management.log_upload``).
An event recorded before the station clock was first synchronised carries the
``unsynced`` mark of its timestamp in both places; :func:`correct_stamps` puts it
in CSMS time at the synchronisation.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from agent.errors import StoreError
from agent.runtime.clock import UNSYNCED, ClockCorrection

SECURITY_EVENT = "SecurityEvent"

#: The security log keeps this many events, the oldest dropped first (read at each write).
SECURITY_LOG_LIMIT = 1000

STARTUP = "StartupOfTheDevice"
RESET_OR_REBOOT = "ResetOrReboot"
SETTING_SYSTEM_TIME = "SettingSystemTime"
RECONFIGURATION = "ReconfigurationOfSecurityParameters"

#: A clock correction larger than this is a security event (someone may be replaying old data).
CLOCK_JUMP_S = 60.0


@dataclass(frozen=True)
class SecurityLogEntry:
    """One event of the security log; ``seq`` is the recording order (the clock may jump)."""

    seq: int
    timestamp: float
    type: str
    tech_info: str | None


def record_security_event(store, kind: str, *, timestamp: float, tech_info: str | None = None) -> None:
    """Queue a security event (durable, delivered in order with everything else) and keep it in the log."""
    mark = store.stamp_mark(timestamp)
    payload = {"type": kind, "timestamp": timestamp, "tech_info": tech_info, **({UNSYNCED: mark} if mark else {})}
    try:
        with store.transaction() as conn:  # both or neither: the log must hold what the CSMS was told
            store.outbox.append(SECURITY_EVENT, payload)
            seq = conn.execute("INSERT INTO security_log (timestamp, type, tech_info, unsynced) VALUES (?, ?, ?, ?)",
                               (timestamp, kind, tech_info, json.dumps(mark) if mark else None)).lastrowid
            # Bounded by count, pruned by seq (never reused): a jump of the clock cannot evict the newest.
            conn.execute("DELETE FROM security_log WHERE seq <= ?", (seq - max(1, SECURITY_LOG_LIMIT),))
    except sqlite3.Error as exc:
        raise StoreError(f"state store {store.path}: security event not recorded: {exc}") from exc


def correct_stamps(store, correction: ClockCorrection) -> int:
    """Put the events recorded before the clock was synchronised in CSMS time, queued and logged alike.

    One SQLite transaction; returns the number of queued events rewritten.
    """
    corrected = 0
    try:
        with store.transaction() as conn:
            for item in store.outbox.pending():
                if item.action == SECURITY_EVENT and correction.rewrite(item.payload):
                    store.outbox.update_payload(item.id, item.payload)
                    corrected += 1
            rows = conn.execute("SELECT seq, timestamp, unsynced FROM security_log WHERE unsynced IS NOT NULL")
            for seq, timestamp, mark in rows.fetchall():
                conn.execute("UPDATE security_log SET timestamp = ?, unsynced = NULL WHERE seq = ?",
                             (correction.corrected(timestamp, json.loads(mark)), seq))
    except sqlite3.Error as exc:
        raise StoreError(f"state store {store.path}: security event times not corrected: {exc}") from exc
    return corrected


def read_security_log(store, *, since: float | None = None, until: float | None = None) -> list[SecurityLogEntry]:
    """The kept events whose timestamp lies in [since, until] (None = open), oldest recorded first."""
    sql, params = "SELECT seq, timestamp, type, tech_info FROM security_log WHERE 1", []
    if since is not None:
        sql, params = sql + " AND timestamp >= ?", params + [since]
    if until is not None:
        sql, params = sql + " AND timestamp <= ?", params + [until]
    try:
        rows = store.connection.execute(sql + " ORDER BY seq", params).fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"state store {store.path}: security log unreadable: {exc}") from exc
    return [SecurityLogEntry(*row) for row in rows]


#: A CertificateSigned chain for the station's own certificate was refused (agent.core.management.station_certificate).
INVALID_STATION_CERTIFICATE = "InvalidChargingStationCertificate"

# Firmware updates (OCPP 2.0.1 security events; the 1.6 security extension uses the same names).
FIRMWARE_UPDATED = "FirmwareUpdated"
INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
