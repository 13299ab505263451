"""OCPP 2.0.1 wording of the core's records: TransactionEvent, sampled values, statuses, idTokenInfo, NotifyEvent."""

from __future__ import annotations

import logging

from ocpp.v201 import call

from agent.runtime.clock import format_iso
from agent.core.charging.model import AuthorizationStatus, ConnectorStatus, IdTokenInfo, MeterSample, Sample, StopReason
from agent.core.management.security_events import SECURITY_EVENT
from agent.core.charging.transactions import (
    ENDED,
    METER_VALUES,
    OPERATION_MODE_CHANGED,
    STARTED,
    STATUS,
    sample_from_dict,
)
from agent.core.charging.fault_reports import FAULT_EVENT
from hal.faults import FAULTS
from agent.protocol.common.status import status_word
from agent.protocol.common import codec as common_codec
from agent.protocol.common.outbox import CoreCodec
from agent.runtime.store import OutboxItem

log = logging.getLogger("agent.ocpp201")

# Core stop reasons as 2.0.1 stoppedReason (2.0.1 has no reset or unlock reasons of its own).
STOPPED_REASON = {
    StopReason.LOCAL: "Local", StopReason.REMOTE: "Remote", StopReason.EV_DISCONNECTED: "EVDisconnected",
    StopReason.POWER_LOSS: "PowerLoss", StopReason.REBOOT: "Reboot", StopReason.SOFT_RESET: "ImmediateReset",
    StopReason.HARD_RESET: "ImmediateReset", StopReason.DEAUTHORIZED: "DeAuthorized",
    StopReason.EMERGENCY_STOP: "EmergencyStop", StopReason.UNLOCK_COMMAND: "Other", StopReason.OTHER: "Other",
    StopReason.MASTER_PASS: "MasterPass", StopReason.TIMEOUT: "Timeout", StopReason.STOPPED_BY_EV: "StoppedByEV",
    StopReason.GROUND_FAULT: "GroundFault",
    # A transaction limit (set only by a 2.1 CSMS; the words are 2.0.1's too).
    StopReason.ENERGY_LIMIT_REACHED: "EnergyLimitReached", StopReason.TIME_LIMIT_REACHED: "TimeLimitReached",
    StopReason.COST_LIMIT_REACHED: "Other",  # ReasonEnumType has no cost reason: the trigger says it (2.1)
}
END_TRIGGER = {
    StopReason.LOCAL: "StopAuthorized", StopReason.REMOTE: "RemoteStop",
    StopReason.EV_DISCONNECTED: "EVCommunicationLost", StopReason.SOFT_RESET: "ResetCommand",
    StopReason.HARD_RESET: "ResetCommand", StopReason.DEAUTHORIZED: "Deauthorized",
    StopReason.UNLOCK_COMMAND: "UnlockCommand", StopReason.MASTER_PASS: "StopAuthorized",
    StopReason.TIMEOUT: "EVConnectTimeout", StopReason.STOPPED_BY_EV: "ChargingStateChanged",
    StopReason.ENERGY_LIMIT_REACHED: "EnergyLimitReached", StopReason.TIME_LIMIT_REACHED: "TimeLimitReached",
    StopReason.COST_LIMIT_REACHED: "CostLimitReached",  # (a 2.1 TriggerReason: only a 2.1 CSMS sets maxCost)
}
DEFAULT_TOKEN_TYPE = "ISO14443"  # a record without a type: a card on our reader
CHARGING_STATE = {
    ConnectorStatus.CHARGING.value: "Charging", ConnectorStatus.SUSPENDED_EV.value: "SuspendedEV",
    ConnectorStatus.SUSPENDED_EVSE.value: "SuspendedEVSE", ConnectorStatus.PREPARING.value: "EVConnected",
    ConnectorStatus.FINISHING.value: "EVConnected",
}
_CONTEXTS = {"Sample.Periodic", "Sample.Clock", "Transaction.Begin", "Transaction.End", "Trigger", "Other",
             "Interruption.Begin", "Interruption.End"}


def status_notification(evse_id: int, status: ConnectorStatus, *, timestamp: float) -> call.StatusNotification:
    """StatusNotification of an EVSE's (only) connector."""
    return call.StatusNotification(timestamp=format_iso(timestamp), connector_status=status_word("2.0.1", status),
                                   evse_id=evse_id, connector_id=1)


def meter_value(sample: MeterSample) -> dict:
    """A core MeterSample as a 2.0.1 MeterValueType (snake_case; the library converts)."""
    return common_codec.meter_value(sample, sampled_value=_sampled_value)


def _sampled_value(v: Sample) -> dict:
    return {"value": v.value, "context": v.context if v.context in _CONTEXTS else "Other",
            "measurand": v.measurand, "location": v.location, "unit_of_measure": {"unit": v.unit}}


def id_token_info(info: dict | None) -> IdTokenInfo | None:
    """A 2.0.1 idTokenInfo (snake_case dict) as the core's IdTokenInfo."""
    if not info:
        return None
    status = info["status"]
    if status not in AuthorizationStatus._value2member_map_:
        status = "Invalid"  # a word from a later OCPP version: refused, as the driver is best told
    expiry = common_codec.expiry_time(info.get("cache_expiry_date_time"))
    group = (info.get("group_id_token") or {}).get("id_token")
    return IdTokenInfo(AuthorizationStatus(status), expiry, group)


def personal_message(content: dict | None) -> str | None:
    """The text of a 2.0.1 MessageContentType a text display can show (ASCII or UTF8), else None."""
    if not content or content.get("format") not in ("ASCII", "UTF8"):
        return None
    return content.get("content") or None


class TransactionCodec(CoreCodec):
    """Neutral outbox records as 2.0.1 TransactionEvent Started / Updated / Ended."""

    calls = call
    #: Triggers of STATUS records that 2.0.1 does not report: a change of operation mode (2.1 only; 2.0.1
    #: has neither the trigger nor the modes). A later version's codec clears it.
    unreported_triggers: tuple[str, ...] = (OPERATION_MODE_CHANGED,)

    def __init__(self, *, journal, authorizer, station, display=None):
        super().__init__(journal=journal, authorizer=authorizer, station=station)
        self._display = display  # agent.core.device_model.display_messages.DisplayMessages, when the station has one

    def encode(self, item: OutboxItem):
        """The 2.0.1 CALL for an outbox record: a TransactionEvent, or a SecurityEventNotification."""
        if item.group is None:
            return self.encode_other(item)
        p = item.payload
        common = {"seq_no": p["seq_no"], "offline": p.get("offline") or None,
                  "evse": {"id": p["evse_id"], "connector_id": 1}}
        if item.action == STARTED:
            return self._started(p, common)
        if item.action == METER_VALUES:
            sample = sample_from_dict(p["sample"])
            trigger = "MeterValueClock" if _context(sample) == "Sample.Clock" else "MeterValuePeriodic"
            return call.TransactionEvent(event_type="Updated", timestamp=format_iso(sample.timestamp),
                                         trigger_reason=trigger, transaction_info={"transaction_id": p["ref"]},
                                         meter_value=[meter_value(sample)], **common)
        if item.action == STATUS:
            if p.get("trigger") in self.unreported_triggers:
                return None  # a report of a later version: this one has no word for it, and sends nothing
            return self._updated(p, common)
        if item.action == ENDED:
            return self._ended(p, common)
        return None

    def encode_other(self, item: OutboxItem):
        """Records that are not about a transaction: security events, and hardware faults as NotifyEvent."""
        if item.action == SECURITY_EVENT:
            return self.security_event(item)
        if item.action == FAULT_EVENT:
            return fault_notify_event(item.payload)
        return None

    def _started(self, p: dict, common: dict):
        info = {"transaction_id": p["ref"], "charging_state": "EVConnected" if p.get("ev_connected", True) else "Idle"}
        if p.get("remote_start_id") is not None:
            info["remote_start_id"] = p["remote_start_id"]
        sample = p.get("sample")
        return call.TransactionEvent(
            event_type="Started", timestamp=format_iso(p["timestamp"]), trigger_reason=p.get("trigger", "Authorized"),
            transaction_info=info, id_token=_token(p), reservation_id=p.get("reservation_id"),
            meter_value=[meter_value(sample_from_dict(sample))] if sample else None, **common)

    def _updated(self, p: dict, common: dict):
        """An Updated event: the charging state changed, the idToken came, the authorization ended, or on request."""
        state = CHARGING_STATE.get(p["charging_state"], "EVConnected") if p.get("ev_connected", True) else "Idle"
        info = {"transaction_id": p["ref"], "charging_state": state}
        if p.get("remote_start_id") is not None:
            info["remote_start_id"] = p["remote_start_id"]
        trigger = p.get("trigger", "ChargingStateChanged")
        if p.get("deauthorized"):
            trigger = END_TRIGGER.get(StopReason(p["deauthorized"]), "Deauthorized")
        sample = p.get("sample")
        return call.TransactionEvent(
            event_type="Updated", timestamp=format_iso(p["timestamp"]), trigger_reason=trigger, transaction_info=info,
            id_token=_token(p), reservation_id=p.get("reservation_id"),
            meter_value=[meter_value(sample_from_dict(sample))] if sample else None, **common)

    def _ended(self, p: dict, common: dict):
        reason = StopReason(p.get("detail") or p["reason"])
        trigger = END_TRIGGER.get(StopReason(p.get("ended_by") or reason), "AbnormalCondition")
        samples = [meter_value(sample_from_dict(s)) for s in p.get("transaction_data", [])]
        return call.TransactionEvent(
            event_type="Ended", timestamp=format_iso(p["timestamp"]), trigger_reason=trigger,
            transaction_info={"transaction_id": p["ref"], "stopped_reason": STOPPED_REASON[reason],
                              # Idle only once the cable is out (a remote stop leaves the EV connected).
                              "charging_state": "EVConnected" if p.get("ev_connected") else "Idle"},
            id_token=_token(p), meter_value=samples or None, **common)

    def token_info(self, result) -> IdTokenInfo | None:
        """The idTokenInfo of a TransactionEvent result (present when an idToken was sent)."""
        return id_token_info(getattr(result, "id_token_info", None))

    def after_commit(self, item: OutboxItem, result) -> None:
        """Cache the CSMS's verdict on the token by token AND type, and stop a transaction whose
        idToken it refused, whether given at the start or later (a transaction started at plug-in);
        show what the CSMS says about the cost and to the driver."""
        self._show_tariff(item, result)
        info = self.token_info(result)
        p = item.payload
        if info is None or not p.get("id_token"):
            return
        self._authorizer.remember(p["id_token"], info, token_type=p.get("token_type") or DEFAULT_TOKEN_TYPE)
        authorizing = item.action == STARTED or (item.action == STATUS and p.get("trigger") in _AUTHORIZING)
        if authorizing and not info.accepted:
            log.warning("CSMS refused %s for transaction %s (%s)", p["id_token"], p["ref"], info.status.value)
            self._station.deauthorize(p["ref"])


    def _show_tariff(self, item: OutboxItem, result) -> None:
        """I02/I03: the running (or, at the end, the final) totalCost and any personal message, on the display."""
        if self._display is None:
            return
        total = getattr(result, "total_cost", None)
        if total is not None:
            if item.action == ENDED:
                self._display.final_cost(total)
            else:
                self._display.cost_updated(item.payload["ref"], total)
        info = getattr(result, "id_token_info", None) or {}
        text = (personal_message(getattr(result, "updated_personal_message", None))
                or personal_message(info.get("personal_message")))
        if text is not None:
            self._display.personal_message(text)


_AUTHORIZING = ("Authorized", "RemoteStart")  # an Updated event that gives the transaction its idToken


def _token(p: dict) -> dict | None:
    """The record's idToken as a 2.0.1 IdTokenType, or None if it has none."""
    if not p.get("id_token"):
        return None
    return {"id_token": p["id_token"], "type": p.get("token_type") or DEFAULT_TOKEN_TYPE}


# ------------------------------------------------------------------ NotifyEvent (hardware faults)

PROBLEM = {"name": "Problem"}


def fault_event_data(event_id: int, *, evse_id: int | None, code: str, problem: bool, cleared: bool,
                     timestamp: float, info: str = "") -> dict:
    """One EventDataType for a hardware fault: the Problem variable of the EVSE (or of the station)
    it concerns, with its value after the change, the fault code as techCode and, when the fault
    went away, cleared."""
    component = {"name": "ChargingStation"} if evse_id is None else {"name": "EVSE", "evse": {"id": evse_id}}
    spec = FAULTS.get(code)
    tech_info = info or (spec.description if spec else "")
    data = {"event_id": event_id, "timestamp": format_iso(timestamp), "trigger": "Delta",
            "actual_value": "true" if problem else "false", "tech_code": code[:50],
            "event_notification_type": "HardWiredNotification", "component": component, "variable": PROBLEM}
    if tech_info:
        data["tech_info"] = tech_info[:500]
    if cleared:
        data["cleared"] = True
    return data


def fault_notify_event(record: dict) -> call.NotifyEvent:
    """The NotifyEvent of a queued fault report (agent.core.charging.fault_reports), stamped when the fault
    changed: it may be sent long after."""
    data = fault_event_data(record["event_id"], evse_id=record["evse_id"], code=record["code"],
                            problem=record["problem"], cleared=not record["active"], timestamp=record["timestamp"],
                            info=record.get("info", "") if record["active"] else "")
    return notify_event([data], generated_at=record["timestamp"])


def notify_event(event_data: list[dict], *, generated_at: float, seq_no: int = 0,
                 tbc: bool = False) -> call.NotifyEvent:
    """A NotifyEvent carrying ``event_data`` (one part of a report when ``tbc``)."""
    return call.NotifyEvent(generated_at=format_iso(generated_at), seq_no=seq_no, event_data=event_data,
                            tbc=tbc or None)


def _context(sample: MeterSample) -> str:
    return sample.values[0].context if sample.values else "Sample.Periodic"
