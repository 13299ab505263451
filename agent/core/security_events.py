"""Security events the CSMS must eventually hear about (OCPP 2.0.1 block A), queued durably.

They go through the same outbox as transaction records, so an event that
happens offline (a reboot, a clock jump) is delivered once the station is back.
"""

from __future__ import annotations

SECURITY_EVENT = "SecurityEvent"

STARTUP = "StartupOfTheDevice"
RESET_OR_REBOOT = "ResetOrReboot"
SETTING_SYSTEM_TIME = "SettingSystemTime"
RECONFIGURATION = "ReconfigurationOfSecurityParameters"

#: A clock correction larger than this is a security event (someone may be replaying old data).
CLOCK_JUMP_S = 60.0


def record_security_event(store, kind: str, *, timestamp: float, tech_info: str | None = None) -> None:
    """Queue a security event (durable, delivered in order with everything else)."""
    store.outbox.append(SECURITY_EVENT, {"type": kind, "timestamp": timestamp, "tech_info": tech_info})


#: A CertificateSigned chain for the station's own certificate was refused (agent.core.station_certificate).
INVALID_STATION_CERTIFICATE = "InvalidChargingStationCertificate"
