"""OCPP 1.6J adapter: translates between OCPP 1.6 messages and the charging core."""

from __future__ import annotations

from ocpp.v16 import ChargePoint as _LibraryChargePoint
from ocpp.v16 import call
from ocpp.v16.enums import Action

from agent.protocol.base import AdapterBase


class Ocpp16Adapter(AdapterBase, _LibraryChargePoint):
    """The Charge Point side of OCPP 1.6J."""

    ocpp_version = "1.6"
    subprotocol = "ocpp1.6"
    known_actions = frozenset(a.value for a in Action)
    silent_while_rejected = True
    #: Station-initiated messages this adapter sends (read by `ocpp-agent pics`).
    sends = frozenset({"BootNotification", "Heartbeat"})

    def boot_notification_request(self) -> call.BootNotification:
        """BootNotification with the station's identity (empty optional fields left out)."""
        return call.BootNotification(
            charge_point_vendor=self.station.vendor[:20],
            charge_point_model=self.station.model[:20],
            charge_point_serial_number=self.station.serial_number[:25] or None,
            firmware_version=self.station.firmware_version[:50] or None,
        )

    def heartbeat_request(self) -> call.Heartbeat:
        """A Heartbeat."""
        return call.Heartbeat()
