"""OCPP 1.6 wording of the core's records: transaction messages, sampled values, statuses, idTagInfo."""

from __future__ import annotations

import logging

from ocpp.v16 import call

from agent.runtime.clock import format_iso
from agent.core.charging.model import AuthorizationStatus, ConnectorStatus, IdTokenInfo, MeterSample, Sample
from agent.core.management.security_events import SECURITY_EVENT
from agent.core.charging.transactions import ENDED, METER_VALUES, STARTED, STATUS, sample_from_dict
from agent.core.charging.fault_reports import FAULT_EVENT
from agent.protocol.common import codec as common_codec
from agent.protocol.common.outbox import CoreCodec, Undeliverable
from agent.runtime.store import OutboxItem
from agent.runtime.storage_health import STORAGE_FAULT

log = logging.getLogger("agent.ocpp16")

# HAL fault codes as 1.6 ChargePointErrorCode; anything else is OtherError with the code as vendorErrorCode.
ERROR_CODES = {
    "contactor-welded": "PowerSwitchFailure",
    "contactor-stuck-open": "PowerSwitchFailure",
    "lock-failure": "ConnectorLockFailure",
    "meter-offline": "PowerMeterFailure",
    "rcd-trip": "GroundFailure",
    "reader-offline": "ReaderFailure",
    "pilot-offline": "EVCommunicationError",
    STORAGE_FAULT: "InternalError",  # agent-side: data_dir cannot be written (agent.runtime.storage_health)
}


def status_notification(connector_id: int, status: ConnectorStatus, error: str | None,
                        *, timestamp: float) -> call.StatusNotification:
    """StatusNotification for a connector (0 = the whole charge point)."""
    code = ERROR_CODES.get(error, "OtherError") if error else "NoError"
    return call.StatusNotification(
        connector_id=connector_id, error_code=code, status=status.value, timestamp=format_iso(timestamp),
        vendor_error_code=error if error and code == "OtherError" else None,
        info=error[:50] if error else None,
    )


def decimal_text(value: float) -> str:
    """A sampled value as 1.6's string: plain decimal, to the milli-unit, never in exponent notation.

    A lifetime energy register passes 1 MWh within months; "1.23457e+06" would lose
    whole watt-hours and read above the meterStop that follows it.
    """
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def meter_value(sample: MeterSample) -> dict:
    """A core MeterSample as a 1.6 MeterValue element."""
    return common_codec.meter_value(sample, sampled_value=_sampled_value)


def _sampled_value(v: Sample) -> dict:
    return {"value": decimal_text(v.value), "context": v.context, "measurand": v.measurand,
            "location": v.location, "unit": v.unit}


def id_token_info(id_tag_info: dict | None) -> IdTokenInfo | None:
    """A 1.6 idTagInfo (snake_case dict from the library) as the core's IdTokenInfo."""
    if not id_tag_info:
        return None
    expiry = common_codec.expiry_time(id_tag_info.get("expiry_date"))
    return IdTokenInfo(AuthorizationStatus(id_tag_info["status"]), expiry, id_tag_info.get("parent_id_tag"))


class TransactionCodec(CoreCodec):
    """Neutral outbox records as 1.6 StartTransaction / MeterValues / StopTransaction / SecurityEventNotification."""

    calls = call
    # The 1.6 security extension names the two parties differently (Central System, Charge Point).
    security_event_names = {
        "FailedToAuthenticateAtCsms": "FailedToAuthenticateAtCentralSystem",
        "CsmsFailedToAuthenticate": "CentralSystemFailedToAuthenticate",
        "InvalidCsmsCertificate": "InvalidCentralSystemCertificate",
        "InvalidChargingStationCertificate": "InvalidChargePointCertificate",
    }

    def encode(self, item: OutboxItem):
        """The 1.6 CALL for an outbox record (None: 1.6 has no message for it)."""
        p = item.payload
        if item.action == SECURITY_EVENT:
            return self.security_event(item)  # the 1.6 security extension's message
        if item.action in (STATUS, FAULT_EVENT) or item.group is None:
            return None  # charging states and faults: 1.6 reports them with StatusNotification only
        if item.action == STARTED:
            return call.StartTransaction(
                connector_id=p["evse_id"], id_tag=p["id_token"], meter_start=round(p["meter_start_Wh"]),
                timestamp=format_iso(p["timestamp"]), reservation_id=p.get("reservation_id"))
        transaction_id = self._transaction_id(p["ref"], item)
        if item.action == METER_VALUES:
            return call.MeterValues(connector_id=p["evse_id"], transaction_id=transaction_id,
                                    meter_value=[meter_value(sample_from_dict(p["sample"]))])
        if item.action == ENDED:
            data = [meter_value(sample_from_dict(s)) for s in p.get("transaction_data", [])] or None
            return call.StopTransaction(
                transaction_id=transaction_id, meter_stop=round(p["meter_stop_Wh"]),
                timestamp=format_iso(p["timestamp"]), reason=p["reason"], id_tag=p.get("id_token"),
                transaction_data=data)
        raise Undeliverable(f"unknown record {item.action}")

    def _transaction_id(self, ref: str, item: OutboxItem) -> int:
        tx = self._journal.get(ref)
        if tx is None or tx.remote_id is None:
            raise Undeliverable(f"transaction {ref} has no transactionId from the CSMS (its start was not accepted)")
        return int(tx.remote_id)

    def apply(self, item: OutboxItem, result) -> None:
        """Record what the CSMS answered (inside the transaction that removes the record)."""
        if item.action == STARTED:
            self._journal.set_remote_id(item.payload["ref"], str(result.transaction_id))

    def token_info(self, result) -> IdTokenInfo | None:
        """The idTagInfo of a Start/StopTransaction result."""
        return id_token_info(getattr(result, "id_tag_info", None))
