"""Server-side ChargePoints of the CSMS simulator (see ``agent.testcsms.server``).

They answer what a station sends, the way a permissive CSMS does, and record
every CALL on the simulator before answering.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from ocpp.exceptions import OCPPError
from ocpp.messages import get_validator
from ocpp.routing import on
from ocpp.v16 import ChargePoint as _Cp16
from ocpp.v16 import call_result as r16
from ocpp.v201 import ChargePoint as _Cp201
from ocpp.v201 import call_result as r201
from ocpp.v21 import call as c21
from ocpp.v21 import call_result as r21
from ocpp.v21.enums import Action as Action21


def now_iso() -> str:
    """The CSMS's current time as an OCPP dateTime (UTC, milliseconds)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _Recording:
    """Records each incoming CALL on the simulator before the library routes it."""

    def __init__(self, station_id, connection, *, simulator):
        super().__init__(station_id, connection, response_timeout=10)
        self.sim = simulator

    async def route_message(self, raw_msg):
        try:
            frame = json.loads(raw_msg)
        except ValueError:
            frame = None
        if isinstance(frame, list) and len(frame) == 4 and frame[0] == 2:
            await self.sim.record(self.id, frame[2], frame[3], frame[1])
            behaviour = self.sim.behaviour
            if frame[2] in behaviour.unanswered:
                return
            code = behaviour.call_errors.get(frame[2])
            if code is not None:
                await self._connection.send(json.dumps([4, frame[1], code, "refused by the test CSMS", {}]))
                return
        await super().route_message(raw_msg)
        await self.sim.notify()  # the handler changed the simulator's state: wake waiters again


class Csms16ChargePoint(_Recording, _Cp16):
    """The CSMS's view of one OCPP 1.6 charge point."""

    @on("BootNotification")
    def on_boot(self, **_):
        b = self.sim.behaviour
        return r16.BootNotification(current_time=now_iso(), interval=b.heartbeat_interval, status=b.boot_status)

    @on("Heartbeat")
    def on_heartbeat(self, **_):
        return r16.Heartbeat(current_time=now_iso())

    @on("StatusNotification")
    def on_status(self, connector_id, status, **_):
        self.sim.status[(self.id, connector_id)] = status
        return r16.StatusNotification()

    @on("Authorize")
    def on_authorize(self, id_tag, **_):
        return r16.Authorize(id_tag_info={"status": self.sim.behaviour.authorize_status})

    @on("StartTransaction")
    def on_start(self, connector_id, id_tag, meter_start, timestamp, **extra):
        # A retransmission (same connector, card, meter and time) gets the same id, as a real CSMS does.
        key = (self.id, connector_id, id_tag, meter_start, timestamp)
        b = self.sim.behaviour
        tx_id = self.sim.start_keys.get(key)
        if tx_id is None:
            tx_id, b.next_transaction_id = b.next_transaction_id, b.next_transaction_id + 1
            self.sim.start_keys[key] = tx_id
            self.sim.transactions[tx_id] = {"connector_id": connector_id, "id_tag": id_tag,
                                            "meter_start": meter_start, "starts": 0, "stops": []}
        self.sim.transactions[tx_id]["starts"] += 1
        return r16.StartTransaction(transaction_id=tx_id, id_tag_info={"status": b.authorize_status})

    @on("StopTransaction")
    def on_stop(self, transaction_id, meter_stop, timestamp, reason="Local", **extra):
        entry = self.sim.transactions.setdefault(transaction_id, {"starts": 0, "stops": []})
        entry["stops"].append({"meter_stop": meter_stop, "reason": reason, "timestamp": timestamp})
        return r16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on("MeterValues")
    def on_meter_values(self, **_):
        return r16.MeterValues()

    @on("DataTransfer")
    def on_data_transfer(self, **_):
        return r16.DataTransfer(status="UnknownVendorId")

    # The security extension's station-initiated messages (when the behaviour says the CSMS has it).

    @on("SecurityEventNotification")
    def on_security_event(self, **_):
        return r16.SecurityEventNotification()

    @on("SignCertificate")
    def on_sign_certificate(self, **_):
        return r16.SignCertificate(status="Accepted")

    @on("LogStatusNotification")
    def on_log_status(self, **_):
        return r16.LogStatusNotification()

    @on("SignedFirmwareStatusNotification")
    def on_signed_firmware_status(self, **_):
        return r16.SignedFirmwareStatusNotification()


class Csms201ChargePoint(_Recording, _Cp201):
    """The CSMS's view of one OCPP 2.0.1 charging station."""

    @on("BootNotification")
    def on_boot(self, **_):
        b = self.sim.behaviour
        return r201.BootNotification(current_time=now_iso(), interval=b.heartbeat_interval, status=b.boot_status)

    @on("Heartbeat")
    def on_heartbeat(self, **_):
        return r201.Heartbeat(current_time=now_iso())

    @on("StatusNotification")
    def on_status(self, evse_id, connector_id, connector_status, **_):
        self.sim.status[(self.id, evse_id)] = connector_status
        return r201.StatusNotification()

    def _id_token_info(self) -> dict:
        b = self.sim.behaviour
        info = {"status": b.authorize_status}
        if b.personal_message is not None:
            info["personal_message"] = {"format": "UTF8", "content": b.personal_message}
        return info

    @on("Authorize")
    def on_authorize(self, id_token, **_):
        return r201.Authorize(id_token_info=self._id_token_info())

    @on("TransactionEvent")
    def on_transaction_event(self, event_type, transaction_info, seq_no, trigger_reason, timestamp, **extra):
        # Keyed by (transactionId, seqNo): a retransmission after a power cut is recognised as one.
        tx = self.sim.transactions.setdefault(transaction_info["transaction_id"], {"events": {}, "resent": 0})
        if seq_no in tx["events"]:
            tx["resent"] += 1
        tx["events"][seq_no] = {"event_type": event_type, "trigger_reason": trigger_reason,
                                "transaction_info": transaction_info, **extra}
        total_cost = self.sim.behaviour.total_cost
        if extra.get("id_token"):
            return r201.TransactionEvent(id_token_info=self._id_token_info(), total_cost=total_cost)
        return r201.TransactionEvent(total_cost=total_cost)

    @on("MeterValues")
    def on_meter_values(self, **_):
        return r201.MeterValues()

    @on("NotifyReport")
    def on_notify_report(self, **_):
        return r201.NotifyReport()

    @on("SecurityEventNotification")
    def on_security_event(self, **_):
        return r201.SecurityEventNotification()

    @on("DataTransfer")
    def on_data_transfer(self, **_):
        return r201.DataTransfer(status="UnknownVendorId")

    @on("SignCertificate")
    def on_sign_certificate(self, **_):
        return r201.SignCertificate(status="Accepted")

    @on("LogStatusNotification")
    def on_log_status(self, **_):
        return r201.LogStatusNotification()

    @on("FirmwareStatusNotification")
    def on_firmware_status(self, **_):
        return r201.FirmwareStatusNotification()

    @on("NotifyEvent")
    def on_notify_event(self, **_):
        return r201.NotifyEvent()

    @on("NotifyDisplayMessages")
    def on_notify_display_messages(self, **_):
        return r201.NotifyDisplayMessages()

    @on("NotifyChargingLimit")
    def on_notify_charging_limit(self, **_):
        return r201.NotifyChargingLimit()

    @on("ClearedChargingLimit")
    def on_cleared_charging_limit(self, **_):
        return r201.ClearedChargingLimit()

    @on("NotifyMonitoringReport")
    def on_notify_monitoring_report(self, **_):
        return r201.NotifyMonitoringReport()

    @on("NotifyCustomerInformation")
    def on_notify_customer_information(self, **_):
        return r201.NotifyCustomerInformation()


#: Every action OCPP 2.1 defines: its SEND NotifyPeriodicEventStream is the one ocpp.v21's Action lacks.
ACTIONS_21 = frozenset(a.value for a in Action21) | {"NotifyPeriodicEventStream"}


class Csms21ChargePoint(Csms201ChargePoint):
    """The CSMS's view of one OCPP 2.1 charging station: the 2.0.1 answers (2.1 accepts them as they are),
    checked against the library's 2.1 schemas both ways, and what the library (2.1.0) lacks for 2.1.

    The library drops a SEND (type 6) and a CALLRESULTERROR (type 5) as not OCPP, and leaves a 2.1 CALL
    without a handler unanswered; here a SEND is checked against its schema and recorded
    (``CsmsSimulator.sends``), and such a CALL is answered NotSupported (an action 2.1 defines) or
    NotImplemented (one it does not). Every CALL or SEND payload the schemas refuse is kept in
    ``CsmsSimulator.schema_errors``, so a test can require there were none; a CALLRESULT they refuse
    fails the test CSMS's ``call`` (the library checks it).
    """

    _call = c21
    _call_result = r21
    _ocpp_version = "2.1"

    @on("OpenPeriodicEventStream")
    def on_open_periodic_event_stream(self, **_):
        """A stream the station opens is Accepted (its values then come as NotifyPeriodicEventStream SENDs)."""
        return r21.OpenPeriodicEventStream(status="Accepted")

    @on("ClosePeriodicEventStream")
    def on_close_periodic_event_stream(self, **_):
        """The station closed a stream: nothing to answer but the empty result."""
        return r21.ClosePeriodicEventStream()

    @on("NotifyPriorityCharging")
    def on_notify_priority_charging(self, **_):
        """The station switched priority charging by itself: noted (``calls``), nothing to answer."""
        return r21.NotifyPriorityCharging()

    @on("Authorize")
    def on_authorize(self, id_token, **_):
        """As in 2.0.1; an accepted answer carries the behaviour's driver tariff, if any."""
        info = self._id_token_info()
        tariff = self.sim.behaviour.authorize_tariff if info["status"] == "Accepted" else None
        return r21.Authorize(id_token_info=info, tariff=tariff)

    @on("PullDynamicScheduleUpdate")
    def on_pull_dynamic_schedule_update(self, **_):
        """The station asks for a Dynamic profile's update: the behaviour's dynamic_update, or Rejected."""
        update = self.sim.behaviour.dynamic_update
        if update is None:
            return r21.PullDynamicScheduleUpdate(status="Rejected")
        return r21.PullDynamicScheduleUpdate(status="Accepted", schedule_update=update)

    @on("TransactionEvent")
    def on_transaction_event(self, event_type, **fields):
        """As in 2.0.1; the answer to a Started event carries the behaviour's transactionLimit, if any."""
        answer = super().on_transaction_event(event_type=event_type, **fields)
        limit = self.sim.behaviour.transaction_limit
        if event_type != "Started" or limit is None:
            return answer
        return r21.TransactionEvent(id_token_info=answer.id_token_info, total_cost=answer.total_cost,
                                    transaction_limit=limit)

    async def route_message(self, raw_msg):
        try:
            frame = json.loads(raw_msg)
        except ValueError:
            frame = None
        if isinstance(frame, list) and frame and frame[0] in (5, 6):
            await self._unanswered(frame)
            return
        await super().route_message(raw_msg)

    async def _unanswered(self, frame: list) -> None:
        if frame[0] == 6 and len(frame) == 4 and isinstance(frame[2], str):
            try:
                error = next(iter(get_validator(6, frame[2], "2.1").iter_errors(frame[3])), None)
            except OSError:
                error = f"{frame[2]} is not a 2.1 SEND"
            if error is not None:
                self.sim.schema_errors.append(f"SEND {frame[2]}: {getattr(error, 'message', error)}")
            await self.sim.record_send(self.id, frame[2], frame[3], frame[1])
        else:
            self.sim.schema_errors.append(f"unexpected frame from the station: {frame!r:.200}")

    async def _handle_call(self, msg):
        if msg.action not in self.route_map:
            known = msg.action in ACTIONS_21
            code, detail = ("NotSupported", "not supported by the test CSMS") if known else \
                ("NotImplemented", "not an OCPP 2.1 action")
            await self._send(json.dumps([4, msg.unique_id, code, f"{msg.action} is {detail}", {}]))
            return None
        try:
            return await super()._handle_call(msg)
        except OCPPError as exc:  # the library's schema check refused the station's CALL: answered as it says
            self.sim.schema_errors.append(f"{msg.action}: {exc.code} {exc.description}")
            raise
