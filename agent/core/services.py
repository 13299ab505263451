"""The core's long-lived services, handed as one bundle to each protocol adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class CoreServices:
    """What a protocol adapter may use: the station, authorization, the journal, settings access."""

    station: object  # agent.core.charging.station.ChargingStation
    authorizer: object  # agent.core.charging.auth.Authorizer
    journal: object  # agent.core.charging.transactions.TransactionJournal
    configuration: object  # agent.core.management.configuration.ConfigurationService
    store: object  # agent.runtime.store.StateStore
    request_reset: Callable[[bool], None]  # ask the app to restart (False) or reboot the board (True)
    device_model: object = None  # agent.core.device_model.DeviceModel (OCPP 2.0.1)
    local_list: object = None  # agent.core.charging.local_list.LocalAuthorizationList
    firmware: object = None  # agent.core.management.firmware.FirmwareJob
    certificates: object = None  # agent.core.management.certificates.CertificateStore
    data_dir: object = None  # pathlib.Path of the state, message log and downloads
    config_path: str | None = None  # for the (redacted) config in a diagnostics archive
    station_id: str = ""  # the identity the station connects with (CN of its certificate)
    station_certificate: object = None  # agent.core.management.station_certificate (security profile 3 client certificate)
    logs: object = None  # agent.core.management.log_upload log upload job (GetLog)
    network: object = None  # agent.core.management.network.NetworkProfiles (connection profiles, security profile)
    display_messages: object = None  # agent.core.device_model.display_messages.DisplayMessages (display messages, running cost)
    monitoring: object = None  # agent.core.device_model.monitoring.Monitoring (OCPP 2.0.1 variable monitors)
    customer_info: object = None  # agent.core.device_model.customer_info.CustomerInformation (2.0.1 CustomerInformation)
