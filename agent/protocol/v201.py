"""OCPP 2.0.1 adapter: translates between OCPP 2.0.1 messages and the charging core."""

from __future__ import annotations

from ocpp.v201 import ChargePoint as _LibraryChargePoint
from ocpp.v201 import call, datatypes
from ocpp.v201.enums import Action, BootReasonEnumType

from agent.protocol.base import AdapterBase


class Ocpp201Adapter(AdapterBase, _LibraryChargePoint):
    """The Charging Station side of OCPP 2.0.1."""

    ocpp_version = "2.0.1"
    subprotocol = "ocpp2.0.1"
    known_actions = frozenset(a.value for a in Action)
    #: Station-initiated messages this adapter sends (read by `ocpp-agent pics`).
    sends = frozenset({"BootNotification", "Heartbeat"})

    def __init__(self, *args, boot_reason: str = "PowerUp", **kwargs):
        super().__init__(*args, **kwargs)
        self.boot_reason = boot_reason

    def boot_notification_request(self) -> call.BootNotification:
        """BootNotification with the station's identity and why it booted."""
        return call.BootNotification(
            charging_station=datatypes.ChargingStationType(
                vendor_name=self.station.vendor[:50],
                model=self.station.model[:20],
                serial_number=self.station.serial_number[:25] or None,
                firmware_version=self.station.firmware_version[:50] or None,
            ),
            reason=BootReasonEnumType(self.boot_reason),
        )

    def heartbeat_request(self) -> call.Heartbeat:
        """A Heartbeat."""
        return call.Heartbeat()
