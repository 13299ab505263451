"""The core's long-lived services, handed as one bundle to each protocol adapter.

Each field is typed with the class the app builds (imported for type checkers only: importing this
module stays free, and the management and device-model wings are not loaded by it). The station is
typed by its declared interface, :class:`agent.core.charging.api.StationApi`, because that is all an
adapter may use of it. Optional services are None where the version or the configuration has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from agent.core.charging.api import StationApi
    from agent.core.charging.auth import Authorizer
    from agent.core.charging.local_list import LocalAuthorizationList
    from agent.core.charging.transactions import TransactionJournal
    from agent.core.device_model import DeviceModel
    from agent.core.device_model.customer_info import CustomerInformation
    from agent.core.device_model.display_messages import DisplayMessages
    from agent.core.device_model.monitoring import Monitoring
    from agent.core.management.certificates import CertificateStore
    from agent.core.management.configuration import ConfigurationService
    from agent.core.management.firmware import FirmwareJob
    from agent.core.management.log_upload import LogUploadJob
    from agent.core.management.network import NetworkProfiles
    from agent.core.management.station_certificate import StationCertificate
    from agent.runtime.store import StateStore


@dataclass
class CoreServices:
    """What a protocol adapter may use: the station, authorization, the journal, settings access."""

    station: StationApi
    authorizer: Authorizer
    journal: TransactionJournal
    configuration: ConfigurationService
    store: StateStore
    request_reset: Callable[[bool], None]  # ask the app to restart (False) or reboot the board (True)
    device_model: DeviceModel | None = None  # OCPP 2.0.1 only
    local_list: LocalAuthorizationList | None = None
    firmware: FirmwareJob | None = None
    certificates: CertificateStore | None = None
    data_dir: Path | None = None  # of the state, message log and downloads
    config_path: str | None = None  # for the (redacted) config in a diagnostics archive
    station_id: str = ""  # the identity the station connects with (CN of its certificate)
    station_certificate: StationCertificate | None = None  # security profile 3 client certificate
    logs: LogUploadJob | None = None  # log upload (GetLog), built on first use
    network: NetworkProfiles | None = None  # connection profiles, security profile
    display_messages: DisplayMessages | None = None  # display messages, running cost
    monitoring: Monitoring | None = None  # OCPP 2.0.1 variable monitors
    customer_info: CustomerInformation | None = None  # OCPP 2.0.1 CustomerInformation
