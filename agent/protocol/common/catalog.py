"""What OCPP defines: each message's initiator and its feature profile / functional block.

These are facts from the OCPP 1.6, 2.0.1 and 2.1 specifications; whether *we*
support a message is never written here, it is read from the adapters.
2.1 keeps every 2.0.1 message in its block and adds 27 (91 in all).
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


# What 2.1 adds to 2.0.1's blocks, and its three new blocks.
_V21_ADDED = {
    "C Authorization": {STATION: "NotifySettlement VatNumberValidation", CSMS: "NotifyWebPaymentStarted"},
    "I Tariff and Cost": {CSMS: "SetDefaultTariff GetTariffs ClearTariffs ChangeTransactionTariff"},
    "K Smart Charging": {STATION: "PullDynamicScheduleUpdate NotifyPriorityCharging",
                         CSMS: "UpdateDynamicSchedule UsePriorityCharging"},
    "M ISO 15118 Certificate Management": {STATION: "GetCertificateChainStatus"},
    "N Diagnostics": {STATION: "OpenPeriodicEventStream ClosePeriodicEventStream NotifyPeriodicEventStream",
                      CSMS: "GetPeriodicEventStream AdjustPeriodicEventStream"},
    "Q Bidirectional Power Transfer": {CSMS: "NotifyAllowedEnergyTransfer AFRRSignal"},
    "R DER Control": {STATION: "ReportDERControl NotifyDERAlarm NotifyDERStartStop",
                      CSMS: "SetDERControl GetDERControl ClearDERControl"},
    "S Battery Swapping": {STATION: "BatterySwap", CSMS: "RequestBatterySwap"},
}


def _extended(table: dict, added: dict) -> dict:
    """``table`` with ``added``'s messages after its own in each block, new blocks at the end."""
    out = {block: dict(by_initiator) for block, by_initiator in table.items()}
    for block, by_initiator in added.items():
        row = out.setdefault(block, {})
        for initiator, names in by_initiator.items():
            row[initiator] = f"{row[initiator]} {names}" if initiator in row else names
    return out


_V21 = _extended(_V201, _V21_ADDED)
_TABLES = {"1.6": _V16, "2.0.1": _V201, "2.1": _V21}


def messages(ocpp_version: str) -> list[tuple[str, str, str]]:
    """(action, initiator, profile or block) for every message of the version, in spec order."""
    table = _TABLES[ocpp_version]
    rows = []
    for profile, by_initiator in table.items():
        for initiator, names in by_initiator.items():
            rows.extend((name, initiator, profile) for name in names.split())
    return rows
