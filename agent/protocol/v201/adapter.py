"""OCPP 2.0.1 adapter: translates between OCPP 2.0.1 messages and the charging core.

The parallel of ``v16``: the same core commands, in 2.0.1's words. Handlers
validate, translate and return quickly; a reset runs from its @after hook.
"""

from __future__ import annotations

import logging

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint as _LibraryChargePoint
from ocpp.v201 import call, call_result, datatypes
from ocpp.v201.enums import Action, BootReasonEnumType

from agent.core.charging import fault_reports
from agent.core.charging.reservations import Reservation
from agent.runtime.clock import unix_time
from agent.core.charging.model import ConnectorStatus, IdTokenInfo, MeterSample, StopReason
from agent.protocol.common.adapter import AdapterBase
from agent.protocol.common.boot import REMOTE_RESET, SCHEDULED_RESET
from agent.protocol.common.status_reports import StatusReporting
from agent.protocol.v201.certificates import CertificateHandlers201
from agent.protocol.v201.device_model import DeviceModelHandlers
from agent.protocol.v201.diagnostics import DiagnosticsHandlers201
from agent.protocol.v201.display import DisplayHandlers201
from agent.protocol.v201.firmware import FirmwareHandlers201
from agent.protocol.v201.local_list import LocalListHandlers201
from agent.protocol.v201.monitoring import MonitoringHandlers201
from agent.protocol.v201.network import NetworkHandlers201
from agent.protocol.common.smart_charging import ProfileRefused
from agent.protocol.v201.smart_charging import SmartChargingHandlers201
from agent.protocol.v201.codec import (
    TransactionCodec,
    fault_event_data,
    id_token_info,
    meter_value,
    notify_event,
    personal_message,
    status_notification,
)

log = logging.getLogger("agent.ocpp201")


class Ocpp201Adapter(CertificateHandlers201, DeviceModelHandlers, FirmwareHandlers201, DiagnosticsHandlers201,
                     DisplayHandlers201, LocalListHandlers201, MonitoringHandlers201, NetworkHandlers201,
                     SmartChargingHandlers201, StatusReporting, AdapterBase, _LibraryChargePoint):
    """The Charging Station side of OCPP 2.0.1."""

    ocpp_version = "2.0.1"
    subprotocol = "ocpp2.0.1"
    known_actions = frozenset(a.value for a in Action)
    #: Station-initiated messages this adapter sends (read by `ocpp-agent pics`).
    sends = frozenset({"BootNotification", "Heartbeat", "Authorize", "TransactionEvent", "StatusNotification",
                       "MeterValues", "DataTransfer", "NotifyReport", "SecurityEventNotification",
                       "ReservationStatusUpdate", "ReportChargingProfiles", "NotifyEvent", "SignCertificate",
                       "LogStatusNotification", "FirmwareStatusNotification", "ClearedChargingLimit",
                       "NotifyChargingLimit", "NotifyDisplayMessages", "NotifyMonitoringReport",
                       "NotifyCustomerInformation"})

    #: Messages this station does not offer, and why (read by `ocpp-agent pics`).
    not_offered = {
        "NotifyEVChargingNeeds": "needs an ISO 15118 stack", "NotifyEVChargingSchedule": "needs an ISO 15118 stack",
        "Get15118EVCertificate": "needs an ISO 15118 stack", "GetCertificateStatus": "needs an ISO 15118 stack",
        "PublishFirmware": "a local controller's", "UnpublishFirmware": "a local controller's",
        "PublishFirmwareStatusNotification": "a local controller's",
    }

    # ------------------------------------------------------------ registration

    def boot_notification_request(self) -> call.BootNotification:
        """BootNotification with the station's identity and why it booted (``boot_reason``)."""
        reason = self.boot_reason()
        return call.BootNotification(
            charging_station=datatypes.ChargingStationType(
                vendor_name=self.station.vendor[:50],
                model=self.station.model[:20],
                serial_number=self.station.serial_number[:25] or None,
                firmware_version=self.station.firmware_version[:50] or None,
            ),
            reason=BootReasonEnumType(reason),
        )

    async def on_accepted(self) -> None:
        """The shared start (statuses, outbox, Authorize), and the hardware problems present now (raised
        while offline, or before the first connection)."""
        await super().on_accepted()
        if self.core is not None:
            self._report_active_faults()

    def transaction_codec(self, core) -> TransactionCodec:
        """2.0.1 TransactionEvent and SecurityEventNotification."""
        return TransactionCodec(journal=core.journal, authorizer=core.authorizer, station=core.station,
                                display=core.display_messages)

    def authorize_request(self, id_token: str) -> call.Authorize:
        """Authorize with an idToken of the type it was presented as (the core hands an IdToken; a plain
        str is a card on our reader)."""
        return call.Authorize(id_token={"id_token": id_token, "type": getattr(id_token, "type", None) or "ISO14443"})

    def id_token_info(self, result) -> IdTokenInfo:
        """The idTokenInfo of an Authorize result; its personal message (a tariff, a greeting) is shown."""
        text = personal_message((result.id_token_info or {}).get("personal_message"))
        display = self.core.display_messages if self.core is not None else None
        if text is not None and display is not None:
            display.personal_message(text)
        return id_token_info(result.id_token_info)

    # ------------------------------------------------------------ CsmsPort

    def status_request(self, evse_id: int, status: ConnectorStatus, error: str | None,
                       *, timestamp: float) -> call.StatusNotification | None:
        """StatusNotification per connector, sent as state (StatusReporting: Preparing -> Charging -> Finishing
        are all "Occupied", so sent once); None for the station's own (2.0.1 reports it elsewhere)."""
        if evse_id == 0:
            return None
        return status_notification(evse_id, status, timestamp=timestamp)

    def meter_values(self, evse_id: int, sample: MeterSample) -> None:
        """MeterValues outside a transaction: sent once, not queued."""
        request = call.MeterValues(evse_id=evse_id, meter_value=[meter_value(sample)])
        self.spawn(self._send_quietly(request), name="meter-values")

    def fault_changed(self, evse_id: int | None, code: str, active: bool, *, timestamp: float, info: str = "") -> None:
        """NotifyEvent for a hardware fault raised or cleared, sent directly: only when the store could not
        queue it (a fault is reported through the outbox, agent.core.charging.fault_reports).

        The event is on the Problem variable of the EVSE (or, evse None, of the
        station), with the variable's value after the change.
        """
        data = fault_event_data(self._next_event_id(), evse_id=evse_id, code=code, problem=self._problem(evse_id),
                                cleared=not active, timestamp=timestamp, info=info if active else "")
        self.spawn(self._send_quietly(notify_event([data], generated_at=self.clock.time())), name="notify-event")

    def _report_active_faults(self) -> None:
        """The problems present now, but those whose raising still waits in the outbox (it goes with its time)."""
        now = self.clock.time()
        queued = fault_reports.queued_raises(self.core.store)
        data = [fault_event_data(self._next_event_id(), evse_id=evse_id, code=code, problem=True, cleared=False,
                                 timestamp=now) for evse_id, code in self.core.station.active_faults()
                if (evse_id, code) not in queued]
        if data:  # one message: a station has a handful of fault codes per EVSE at most
            self.spawn(self._send_quietly(notify_event(data, generated_at=now)), name="notify-event")

    def _problem(self, evse_id: int | None) -> bool:
        station = self.core.station
        return bool(station.station_fault_codes() if evse_id is None else station.evse(evse_id).faults)

    def _next_event_id(self) -> int:
        return fault_reports.next_event_id(self.core.store)  # one counter with the queued fault reports

    # ------------------------------------------------------------ handlers

    @on(Action.change_availability)
    async def on_change_availability(self, operational_status: str, evse: dict | None = None, **_):
        """ChangeAvailability for the station (no evse), an EVSE, or its connector."""
        evse_id = (evse or {}).get("id", 0)
        if evse and evse.get("connector_id") not in (None, 1):
            return call_result.ChangeAvailability(status="Rejected")
        status = await self.core.station.change_availability(evse_id, operational_status == "Operative")
        return call_result.ChangeAvailability(status=status)

    @on(Action.request_start_transaction)
    def on_request_start_transaction(self, id_token: dict, remote_start_id: int, evse_id: int | None = None,
                                     charging_profile: dict | None = None, **_):
        """RequestStartTransaction: Accepted when an EVSE can take it; authorization follows.

        Rejected while the registration is Pending or Rejected (B02.FR.05: not while Pending) and for
        evseId 0, the station itself (an evseId must be > 0).
        """
        if self.remote_start_refused("RequestStartTransaction", target_id=evse_id, target_name="evseId"):
            return call_result.RequestStartTransaction(status="Rejected")
        try:
            profile = self.remote_start_profile(charging_profile, evse_id=evse_id or 1)
        except ProfileRefused:
            return call_result.RequestStartTransaction(status="Rejected")
        station = self.core.station
        started = station.awaiting_transaction(evse_id)  # began at plug-in: this start gives it its idToken
        accepted = station.remote_start(id_token["id_token"], evse_id=evse_id, charging_profile=profile,
                                        remote_start_id=remote_start_id, token_type=id_token["type"])
        return call_result.RequestStartTransaction(status="Accepted" if accepted else "Rejected",
                                                   transaction_id=started if accepted else None)

    @on(Action.request_stop_transaction)
    async def on_request_stop_transaction(self, transaction_id: str, **_):
        """RequestStopTransaction: Accepted if the transaction runs here."""
        stopped = await self.core.station.remote_stop(ref=transaction_id)
        return call_result.RequestStopTransaction(status="Accepted" if stopped else "Rejected")

    @on(Action.get_transaction_status)
    def on_get_transaction_status(self, transaction_id: str | None = None, **_):
        """GetTransactionStatus: is it still running, and are messages about it still queued."""
        pending = self.core.station.transaction_messages_queued(transaction_id or None)
        if transaction_id is None:
            return call_result.GetTransactionStatus(messages_in_queue=pending)
        tx = self.core.journal.get(transaction_id)
        return call_result.GetTransactionStatus(messages_in_queue=pending,
                                                ongoing_indicator=bool(tx and tx.active))

    @on(Action.reset)
    def on_reset(self, type: str, evse_id: int | None = None, **_):
        """Reset the station or one EVSE: Immediate, or OnIdle (Scheduled while a transaction runs there)."""
        station = self.core.station
        if evse_id is not None:
            return call_result.Reset(status=station.evse_reset_answer(evse_id, immediate=type == "Immediate"))
        return call_result.Reset(status="Scheduled" if (type == "OnIdle" and station.busy()) else "Accepted")

    @after(Action.reset)
    async def after_reset(self, type: str, evse_id: int | None = None, **_):
        """End transactions (Immediate) or wait for them (OnIdle), then restart the agent, or reset the EVSE."""
        station = self.core.station
        if evse_id is not None:
            if station.has_evse(evse_id):
                await station.reset_evse(evse_id, immediate=type == "Immediate")
                view = station.evse(evse_id)  # a reset EVSE reports its connector as after power-up
                self.report_status(evse_id, view.status, view.error, force=True)
            return
        scheduled = type == "OnIdle" and station.busy()  # answered Scheduled: it waits for the transactions
        if scheduled:
            await station.wait_until_idle()
        self.set_next_boot_reason(SCHEDULED_RESET if scheduled else REMOTE_RESET)
        await station.prepare_reset(StopReason.SOFT_RESET)
        self.core.request_reset(False)

    @on(Action.unlock_connector)
    async def on_unlock_connector(self, evse_id: int, connector_id: int, **_):
        """UnlockConnector: never while an authorized transaction runs (2.0.1 does not stop it)."""
        station = self.core.station
        if not station.has_evse(evse_id) or connector_id != 1:
            return call_result.UnlockConnector(status="UnknownConnector")
        if station.busy(evse_id):
            return call_result.UnlockConnector(status="OngoingAuthorizedTransaction")
        status = await station.unlock(evse_id)
        return call_result.UnlockConnector(status="Unlocked" if status == "Unlocked" else "UnlockFailed")

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, evse: dict | None = None, **_):
        """TriggerMessage for the messages this station can send on demand (``_trigger_<message>``)."""
        evse_id = (evse or {}).get("id")
        if evse_id is not None and not self.core.station.has_evse(evse_id):
            return call_result.TriggerMessage(status="Rejected")
        if requested_message == "BootNotification":
            if self.registration == "Accepted":
                return call_result.TriggerMessage(status="Rejected")  # once accepted, refused (F06.FR.17)
            self.trigger_boot()  # Pending: the next BootNotification goes now, reason Triggered
            return call_result.TriggerMessage(status="Accepted")
        if requested_message == "TransactionEvent" and not self.core.station.busy(evse_id):
            return call_result.TriggerMessage(status="Rejected")  # no ongoing transaction to report
        send = getattr(self, f"_trigger_{requested_message}", None)
        if send is None:
            return call_result.TriggerMessage(status="NotImplemented")
        self.spawn(send(evse_id), name=f"trigger-{requested_message}")
        return call_result.TriggerMessage(status="Accepted")

    async def _trigger_StatusNotification(self, evse_id: int | None) -> None:  # noqa: N802
        for i, (status, error) in sorted(self.core.station.current_statuses().items()):
            if i != 0 and evse_id in (None, i):
                self.report_status(i, status, error, force=True)  # a triggered status is sent even if unchanged

    async def _trigger_TransactionEvent(self, evse_id: int | None) -> None:  # noqa: N802
        """An Updated event (triggerReason Trigger) for the ongoing transaction of the EVSE, or of each."""
        station = self.core.station
        for i in station.evse_ids():
            if evse_id in (None, i):
                await station.report_transaction(i)

    async def _trigger_MeterValues(self, evse_id: int | None) -> None:  # noqa: N802
        station = self.core.station
        for i in station.evse_ids():
            if evse_id in (None, i):
                sample = await station.sample_now(i, self.settings["meter_values_aligned_data"], context="Trigger")
                if sample is not None:
                    await self._send_quietly(call.MeterValues(evse_id=i, meter_value=[meter_value(sample)]))

    # ------------------------------------------------------------ H: reservation

    @on(Action.reserve_now)
    async def on_reserve_now(self, id: int, expiry_date_time: str, id_token: dict, evse_id: int | None = None,
                             group_id_token: dict | None = None, **_):
        """ReserveNow for an EVSE, or any EVSE when none is named."""
        group = (group_id_token or {}).get("id_token")
        reservation = Reservation(id, evse_id or 0, id_token["id_token"].upper(), group,
                                  unix_time(expiry_date_time))
        result = await self.core.station.reserve(reservation)
        return call_result.ReserveNow(status=result.value)

    def reservation_ended(self, reservation_id: int, status: str) -> None:
        """ReservationStatusUpdate: Expired or Removed."""
        request = call.ReservationStatusUpdate(reservation_id=reservation_id, reservation_update_status=status)
        self.spawn(self._send_quietly(request), name="reservation-status")
