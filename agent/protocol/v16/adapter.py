"""OCPP 1.6J adapter: translates between OCPP 1.6 messages and the charging core.

Handlers validate, translate into a core command and return quickly; anything
that must happen after the CALLRESULT (a reset) runs from an @after hook.
"""

from __future__ import annotations

import logging

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as _LibraryChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from ocpp.exceptions import OccurenceConstraintViolationError

from agent.core.management.configuration import TooManyKeysError
from agent.runtime.clock import unix_time
from agent.core.charging.reservations import Reservation
from agent.core.charging.model import ConnectorStatus, IdTokenInfo, MeterSample, StopReason
from agent.errors import CallTimeout
from agent.errors import CallErrorReceived, InvalidResponse
from agent.protocol.common.adapter import AdapterBase
from agent.protocol.common.status_reports import StatusReporting
from agent.protocol.v16.certificates import CertificateHandlers16
from agent.protocol.v16.diagnostics import DiagnosticsHandlers16
from agent.protocol.v16.firmware import FirmwareHandlers16
from agent.protocol.v16.local_list import LocalListHandlers16
from agent.protocol.common.smart_charging import ProfileRefused
from agent.protocol.v16.smart_charging import SmartChargingHandlers16
from agent.protocol.v16.codec import TransactionCodec, id_token_info, meter_value, status_notification

log = logging.getLogger("agent.ocpp16")


class Ocpp16Adapter(CertificateHandlers16, FirmwareHandlers16, DiagnosticsHandlers16, LocalListHandlers16,
                    SmartChargingHandlers16, StatusReporting, AdapterBase, _LibraryChargePoint):
    """The Charge Point side of OCPP 1.6J."""

    ocpp_version = "1.6"
    subprotocol = "ocpp1.6"
    known_actions = frozenset(a.value for a in Action)
    silent_while_rejected = True
    #: Station-initiated messages this adapter sends (read by `ocpp-agent pics`).
    sends = frozenset({"BootNotification", "Heartbeat", "Authorize", "StartTransaction", "StopTransaction",
                       "MeterValues", "StatusNotification", "DataTransfer", "DiagnosticsStatusNotification",
                       "FirmwareStatusNotification", "SecurityEventNotification", "SignCertificate",
                       "LogStatusNotification", "SignedFirmwareStatusNotification"})

    # ------------------------------------------------------------ registration

    def boot_notification_request(self) -> call.BootNotification:
        """BootNotification with the station's identity (empty optional fields left out)."""
        return call.BootNotification(
            charge_point_vendor=self.station.vendor[:20],
            charge_point_model=self.station.model[:20],
            charge_point_serial_number=self.station.serial_number[:25] or None,
            firmware_version=self.station.firmware_version[:50] or None,
        )

    def transaction_codec(self, core) -> TransactionCodec:
        """1.6 StartTransaction / MeterValues / StopTransaction."""
        return TransactionCodec(journal=core.journal, authorizer=core.authorizer, station=core.station)

    def authorize_request(self, id_token: str) -> call.Authorize:
        """Authorize with an idTag."""
        return call.Authorize(id_tag=id_token)

    def id_token_info(self, result) -> IdTokenInfo:
        """The idTagInfo of an Authorize result."""
        return id_token_info(result.id_tag_info)

    # ------------------------------------------------------------ CsmsPort

    def status_request(self, evse_id: int, status: ConnectorStatus, error: str | None,
                       *, timestamp: float) -> call.StatusNotification:
        """StatusNotification of a connector, or of the charge point (0); sent as state (StatusReporting)."""
        return status_notification(evse_id, status, error, timestamp=timestamp)

    def meter_values(self, evse_id: int, sample: MeterSample) -> None:
        """Meter values outside a transaction (clock-aligned): sent once, not queued."""
        request = call.MeterValues(connector_id=evse_id, meter_value=[meter_value(sample)])
        self.spawn(self._send_quietly(request), name="meter-values")

    # ------------------------------------------------------------ Core profile handlers

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str, **_):
        """ChangeAvailability: 0 = the whole charge point; Scheduled while a transaction runs."""
        status = await self.core.station.change_availability(connector_id, type == "Operative")
        return call_result.ChangeAvailability(status=status)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_):
        """ChangeConfiguration through the station's single settings store."""
        result = self.core.configuration.change_ocpp16(key, value)
        return call_result.ChangeConfiguration(status=result.value)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_):
        """GetConfiguration: known keys with their readonly flag, unknown ones listed back."""
        try:
            known, unknown = self.core.configuration.get_ocpp16(key)
        except TooManyKeysError as exc:
            raise OccurenceConstraintViolationError(
                description=f"{exc.requested} keys requested; GetConfigurationMaxKeys is {exc.limit}") from None
        keys = [{"key": k.key, "readonly": k.readonly, **({"value": k.value} if k.value is not None else {})}
                for k in known]
        return call_result.GetConfiguration(configuration_key=keys or None, unknown_key=unknown or None)

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None,
                                    charging_profile: dict | None = None, **_):
        """RemoteStartTransaction: Accepted when a connector can take it; authorization follows.

        Rejected while the registration is Pending or Rejected (1.6 §4.2 does not allow it then) and for
        connectorId 0, which names the charge point, not a connector (it must be > 0).
        """
        if self.remote_start_refused("RemoteStartTransaction", target_id=connector_id, target_name="connectorId"):
            return call_result.RemoteStartTransaction(status="Rejected")
        try:
            profile = self.remote_start_profile(charging_profile, evse_id=connector_id or 1)
        except ProfileRefused:
            return call_result.RemoteStartTransaction(status="Rejected")
        accepted = self.core.station.remote_start(id_tag, evse_id=connector_id or None, charging_profile=profile)
        return call_result.RemoteStartTransaction(status="Accepted" if accepted else "Rejected")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop_transaction(self, transaction_id: int, **_):
        """RemoteStopTransaction: Accepted if the transaction runs here."""
        stopped = await self.core.station.remote_stop(remote_id=str(transaction_id))
        return call_result.RemoteStopTransaction(status="Accepted" if stopped else "Rejected")

    @on(Action.reset)
    def on_reset(self, type: str, **_):
        """Reset: always Accepted; transactions end and the restart follows the reply."""
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    async def after_reset(self, type: str, **_):
        """End transactions with the reset's reason, then restart (Soft) or reboot the board (Hard)."""
        hard = type == "Hard"
        await self.core.station.prepare_reset(StopReason.HARD_RESET if hard else StopReason.SOFT_RESET)
        self.core.request_reset(hard)

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, connector_id: int, **_):
        """UnlockConnector: a running transaction is stopped (UnlockCommand) before the lock opens."""
        return call_result.UnlockConnector(status=await self.core.station.unlock(connector_id))

    # ------------------------------------------------------------ Remote Trigger profile

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_):
        """TriggerMessage: the requested message follows the reply (for one connector, or all)."""
        if connector_id is not None and connector_id != 0 and not self.core.station.has_evse(connector_id):
            return call_result.TriggerMessage(status="Rejected")
        send = getattr(self, f"_trigger_{requested_message}", None)
        if send is None:
            return call_result.TriggerMessage(status="NotImplemented")
        self.spawn(send(connector_id or None), name=f"trigger-{requested_message}")
        return call_result.TriggerMessage(status="Accepted")

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(self, requested_message: str, connector_id: int | None = None, **_):
        """ExtendedTriggerMessage (security extension): TriggerMessage plus the security messages.

        A message with a different form under the security extension (FirmwareStatusNotification
        is then SignedFirmwareStatusNotification) has an ``_extended_trigger_<name>`` method;
        the others are the plain TriggerMessage ones.
        """
        if connector_id is not None and connector_id != 0 and not self.core.station.has_evse(connector_id):
            return call_result.ExtendedTriggerMessage(status="Rejected")
        send = (getattr(self, f"_extended_trigger_{requested_message}", None)
                or getattr(self, f"_trigger_{requested_message}", None))
        if send is None:
            return call_result.ExtendedTriggerMessage(status="NotImplemented")
        self.spawn(send(connector_id or None), name=f"trigger-{requested_message}")
        return call_result.ExtendedTriggerMessage(status="Accepted")

    async def _trigger_BootNotification(self, connector_id: int | None) -> None:  # noqa: N802 (action name)
        if self.registration != "Accepted":
            self.trigger_boot()  # Pending: the registration's next BootNotification goes now
            return
        try:
            response = await self.call(self.boot_notification_request())
        except (CallTimeout, CallErrorReceived, InvalidResponse) as exc:
            log.warning("triggered BootNotification failed: %s", exc)
            return
        self._clock_synced(response.current_time)
        if response.status == "Accepted" and response.interval > 0:
            self.settings.set("heartbeat_interval_s", response.interval)

    async def _trigger_StatusNotification(self, connector_id: int | None) -> None:  # noqa: N802
        for evse_id, (status, error) in sorted(self.core.station.current_statuses().items()):
            if connector_id in (None, evse_id):
                self.report_status(evse_id, status, error, force=True)  # sent even if unchanged

    async def _trigger_MeterValues(self, connector_id: int | None) -> None:  # noqa: N802
        station = self.core.station
        for evse_id in station.evse_ids():
            if connector_id in (None, evse_id):
                sample = await station.sample_now(evse_id, self.settings["meter_values_sampled_data"],
                                                  context="Trigger")
                if sample is None:
                    continue
                remote = station.evse(evse_id).remote_id
                await self._send_quietly(call.MeterValues(connector_id=evse_id, meter_value=[meter_value(sample)],
                                                          transaction_id=int(remote) if remote else None))

    # ------------------------------------------------------------ Reservation profile

    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int,
                             parent_id_tag: str | None = None, **_):
        """ReserveNow for a connector, or for any (connector 0, when ReserveConnectorZeroSupported)."""
        reservation = Reservation(reservation_id, connector_id, id_tag.upper(), parent_id_tag,
                                  unix_time(expiry_date))
        result = await self.core.station.reserve(
            reservation, zero_supported=self.settings["reserve_connector_zero_supported"])
        return call_result.ReserveNow(status=result.value)
