"""What OCPP defines: each message's initiator and its feature profile / functional block.

These are facts from the OCPP 1.6 and 2.0.1 specifications; whether *we*
support a message is never written here, it is read from the adapters.
"""

from __future__ import annotations

STATION, CSMS, BOTH = "Charging Station", "CSMS", "both"

_V16 = {
    "Core": {
        STATION: "Authorize BootNotification Heartbeat MeterValues StartTransaction StatusNotification StopTransaction",
        CSMS: "ChangeAvailability ChangeConfiguration ClearCache GetConfiguration RemoteStartTransaction "
              "RemoteStopTransaction Reset UnlockConnector",
        BOTH: "DataTransfer",
    },
    "Firmware Management": {
        STATION: "DiagnosticsStatusNotification FirmwareStatusNotification",
        CSMS: "GetDiagnostics UpdateFirmware",
    },
    "Local Auth List Management": {CSMS: "GetLocalListVersion SendLocalList"},
    "Reservation": {CSMS: "CancelReservation ReserveNow"},
    "Smart Charging": {CSMS: "ClearChargingProfile GetCompositeSchedule SetChargingProfile"},
    "Remote Trigger": {CSMS: "TriggerMessage"},
    "Security (1.6 extension)": {
        STATION: "LogStatusNotification SecurityEventNotification SignCertificate SignedFirmwareStatusNotification",
        CSMS: "CertificateSigned DeleteCertificate ExtendedTriggerMessage GetInstalledCertificateIds GetLog "
              "InstallCertificate SignedUpdateFirmware",
    },
}

_V201 = {
    "A Security": {STATION: "SecurityEventNotification SignCertificate", CSMS: "CertificateSigned"},
    "B Provisioning": {
        STATION: "BootNotification NotifyReport",
        CSMS: "GetBaseReport GetReport GetVariables Reset SetNetworkProfile SetVariables",
    },
    "C Authorization": {STATION: "Authorize", CSMS: "ClearCache"},
    "D Local Authorization List": {CSMS: "GetLocalListVersion SendLocalList"},
    "E Transactions": {STATION: "TransactionEvent", CSMS: "GetTransactionStatus"},
    "F Remote Control": {CSMS: "RequestStartTransaction RequestStopTransaction TriggerMessage UnlockConnector"},
    "G Availability": {STATION: "Heartbeat StatusNotification", CSMS: "ChangeAvailability"},
    "H Reservation": {STATION: "ReservationStatusUpdate", CSMS: "CancelReservation ReserveNow"},
    "I Tariff and Cost": {CSMS: "CostUpdated"},
    "J Meter Values": {STATION: "MeterValues"},
    "K Smart Charging": {
        STATION: "ClearedChargingLimit NotifyChargingLimit NotifyEVChargingNeeds NotifyEVChargingSchedule "
                 "ReportChargingProfiles",
        CSMS: "ClearChargingProfile GetChargingProfiles GetCompositeSchedule SetChargingProfile",
    },
    "L Firmware Management": {
        STATION: "FirmwareStatusNotification PublishFirmwareStatusNotification",
        CSMS: "PublishFirmware UnpublishFirmware UpdateFirmware",
    },
    "M ISO 15118 Certificate Management": {
        STATION: "Get15118EVCertificate GetCertificateStatus",
        CSMS: "DeleteCertificate GetInstalledCertificateIds InstallCertificate",
    },
    "N Diagnostics": {
        STATION: "LogStatusNotification NotifyCustomerInformation NotifyEvent NotifyMonitoringReport",
        CSMS: "ClearVariableMonitoring CustomerInformation GetLog GetMonitoringReport SetMonitoringBase "
              "SetMonitoringLevel SetVariableMonitoring",
    },
    "O Display Message": {STATION: "NotifyDisplayMessages", CSMS: "ClearDisplayMessage GetDisplayMessages SetDisplayMessage"},
    "P Data Transfer": {BOTH: "DataTransfer"},
}


def messages(ocpp_version: str) -> list[tuple[str, str, str]]:
    """(action, initiator, profile or block) for every message of the version, in spec order."""
    table = _V16 if ocpp_version == "1.6" else _V201
    rows = []
    for profile, by_initiator in table.items():
        for initiator, names in by_initiator.items():
            rows.extend((name, initiator, profile) for name in names.split())
    return rows
