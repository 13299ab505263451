"""Answer first: no CALL of the station reaches the CSMS between a CSMS request and its answer.

Every CSMS-initiated action of both versions that has follow-up CALLs is sent once to a station on the
test CSMS over a real WebSocket. Each step waits for its follow-ups (so the walk proves there were some)
and then reads the CSMS's record of the wire (``CsmsSimulator.calls_before_answers``): a StatusNotification,
StopTransaction, TransactionEvent, report or security event sent before the answer fails the test. The
station must also stay quiet between steps, so a late follow-up cannot cross the next request on the wire.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.runtime.clock import format_iso
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.transfer_servers import CLOSED_PORT_URL
from tests.harness import v16 as h16
from tests.harness import v201 as h201

CARD = "04A1B2C3"
NEW_KEY = "0123456789abcdef0123"  # an AuthorizationKey / BasicAuthPassword of valid length


async def settle(csms, *, quiet: float = 0.1, timeout: float = 5.0) -> None:
    """Wait until nothing has crossed the wire for ``quiet`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        seen = len(csms.frames)
        await asyncio.sleep(quiet)
        if len(csms.frames) == seen:
            return
    raise AssertionError("the station never went quiet")


async def step(csms, request, *follow_ups: str, until=None):
    """Send ``request`` (on a quiet wire), wait for one more of each follow-up action (and ``until``) and for
    the wire to go quiet again, and fail if the station sent any CALL before the answer. Returns the answer."""
    before = {action: len(csms.calls(action)) for action in follow_ups}
    answer = await csms.call("CP1", request)
    for action in follow_ups:
        await csms.wait_for(lambda a=action: len(csms.calls(a)) > before[a], timeout=5)
    if until is not None:
        await csms.wait_for(until, timeout=5)
    await settle(csms)
    assert csms.calls_before_answers() == [], f"{type(request).__name__} was not answered first"
    return answer


def in_an_hour() -> str:
    return format_iso(time.time() + 3600)


@pytest.mark.csms(heartbeat_interval=300)
async def test_ordering_16_every_request_with_follow_ups_is_answered_first(tmp_path, csms16):
    csms = csms16
    async with running_agent(agent_config(tmp_path, csms.url)) as agent:
        await h16.reach_status(csms, "Available")
        await settle(csms)
        await step(csms, call16.ChangeAvailability(connector_id=1, type="Inoperative"), "StatusNotification")
        await step(csms, call16.ChangeAvailability(connector_id=0, type="Operative"), "StatusNotification")
        await step(csms, call16.ReserveNow(connector_id=1, expiry_date=in_an_hour(), id_tag=CARD, reservation_id=7),
                   "StatusNotification")
        await step(csms, call16.CancelReservation(reservation_id=7), "StatusNotification")
        for message in ("StatusNotification", "Heartbeat", "MeterValues", "BootNotification",
                        "FirmwareStatusNotification", "DiagnosticsStatusNotification"):
            await step(csms, call16.TriggerMessage(requested_message=message), message)
        for message, sent in (("LogStatusNotification", "LogStatusNotification"),
                              ("FirmwareStatusNotification", "SignedFirmwareStatusNotification"),
                              ("SignChargePointCertificate", "SignCertificate")):
            await step(csms, call16.ExtendedTriggerMessage(requested_message=message), sent)
        await step(csms, call16.ChangeConfiguration(key="AuthorizationKey", value=NEW_KEY),
                   "SecurityEventNotification")
        await step(csms, call16.CertificateSigned(certificate_chain="not a certificate"),
                   "SecurityEventNotification")
        await step(csms, h16.update(CLOSED_PORT_URL + "fw.bin", retries=1), "FirmwareStatusNotification",
                   until=lambda: "DownloadFailed" in h16.firmware_statuses(csms))
        await step(csms, call16.SignedUpdateFirmware(request_id=4, firmware={
            "location": CLOSED_PORT_URL + "fw.bin", "retrieve_date_time": format_iso(time.time()),
            "signing_certificate": "not a certificate", "signature": "AAAA"}), "SecurityEventNotification")
        await step(csms, call16.GetDiagnostics(location=CLOSED_PORT_URL, retries=1), "DiagnosticsStatusNotification",
                   until=lambda: "UploadFailed" in h16.diagnostics_statuses(csms))
        await step(csms, call16.GetLog(log={"remote_location": CLOSED_PORT_URL}, log_type="DiagnosticsLog",
                                       request_id=3, retries=1), "LogStatusNotification",
                   until=lambda: csms.calls("LogStatusNotification")[-1].payload["status"] == "UploadFailure")

        agent.hal.plug(1)
        await h16.reach_status(csms, "Preparing")
        await settle(csms)
        await step(csms, call16.RemoteStartTransaction(id_tag=CARD, connector_id=1), "StartTransaction",
                   "StatusNotification")
        await step(csms, call16.SetChargingProfile(connector_id=1, cs_charging_profiles={
            "charging_profile_id": 5, "transaction_id": len(csms.transactions), "stack_level": 0,
            "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative", "charging_schedule": {
                "charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 10}]}}))
        await step(csms, call16.RemoteStopTransaction(transaction_id=len(csms.transactions)), "StopTransaction")
        await step(csms, call16.RemoteStartTransaction(id_tag=CARD, connector_id=1), "StartTransaction")
        await step(csms, call16.UnlockConnector(connector_id=1), "StopTransaction", "StatusNotification")
        agent.hal.unplug(1)
        agent.hal.plug(1)
        await h16.reach_status(csms, "Preparing")
        await settle(csms)
        await step(csms, call16.RemoteStartTransaction(id_tag=CARD, connector_id=1), "StartTransaction")
        await step(csms, call16.Reset(type="Soft"), "StopTransaction")
        await wait_until(lambda: agent.reset_requested is False)


@pytest.mark.csms(heartbeat_interval=300)
async def test_ordering_201_every_request_with_follow_ups_is_answered_first(tmp_path, csms201):
    csms = csms201
    async with running_agent(agent_config(tmp_path, csms.url, ocpp_version="2.0.1")) as agent:
        await h201.reach_status(csms, "Available")
        await settle(csms)
        evse = {"id": 1}
        await step(csms, call201.ChangeAvailability(operational_status="Inoperative", evse=evse),
                   "StatusNotification")
        await step(csms, call201.ChangeAvailability(operational_status="Operative"), "StatusNotification")
        token = {"id_token": CARD, "type": "ISO14443"}
        await step(csms, call201.ReserveNow(id=7, expiry_date_time=in_an_hour(), id_token=token, evse_id=1),
                   "StatusNotification")
        await step(csms, call201.CancelReservation(reservation_id=7), "StatusNotification")
        for message, sent in (("StatusNotification", "StatusNotification"), ("Heartbeat", "Heartbeat"),
                              ("MeterValues", "MeterValues"), ("FirmwareStatusNotification",) * 2,
                              ("LogStatusNotification",) * 2, ("SignChargingStationCertificate", "SignCertificate")):
            await step(csms, call201.TriggerMessage(requested_message=message), sent)
        await step(csms, call201.SetVariables(set_variable_data=[{
            "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
            "attribute_value": NEW_KEY}]), "SecurityEventNotification")
        await step(csms, call201.CertificateSigned(certificate_chain="not a certificate"),
                   "SecurityEventNotification")
        await step(csms, call201.GetBaseReport(request_id=1, report_base="SummaryInventory"), "NotifyReport")
        await step(csms, call201.GetReport(request_id=2, component_variable=[{"component": {"name": "OCPPCommCtrlr"}}]),
                   "NotifyReport")
        await step(csms, call201.GetMonitoringReport(request_id=3), "NotifyMonitoringReport")
        await step(csms, call201.CustomerInformation(request_id=4, report=True, clear=False,
                                                     id_token=token), "NotifyCustomerInformation")
        await step(csms, call201.SetDisplayMessage(message={"id": 1, "priority": "NormalCycle",
                                                            "message": {"format": "UTF8", "content": "Hello"}}))
        await step(csms, call201.GetDisplayMessages(request_id=5), "NotifyDisplayMessages")
        await step(csms, call201.UpdateFirmware(request_id=6, retries=1, firmware={
            "location": CLOSED_PORT_URL + "fw.bin", "retrieve_date_time": format_iso(time.time())}),
            "FirmwareStatusNotification",
            until=lambda: csms.calls("FirmwareStatusNotification")[-1].payload["status"] == "DownloadFailed")
        await step(csms, call201.GetLog(log={"remote_location": CLOSED_PORT_URL}, log_type="DiagnosticsLog",
                                        request_id=8, retries=1), "LogStatusNotification",
                   until=lambda: csms.calls("LogStatusNotification")[-1].payload["status"] == "UploadFailure")

        agent.hal.plug(1)
        await h201.reach_status(csms, "Occupied")
        await settle(csms)
        await step(csms, call201.RequestStartTransaction(id_token=token, remote_start_id=1, evse_id=1),
                   "TransactionEvent")
        await step(csms, call201.TriggerMessage(requested_message="TransactionEvent", evse=evse), "TransactionEvent")
        await step(csms, call201.SetChargingProfile(evse_id=1, charging_profile={
            "id": 11, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Relative", "charging_schedule": [{
                "id": 1, "charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 13}]}]}))
        await step(csms, call201.GetChargingProfiles(request_id=9, charging_profile={"charging_profile_purpose":
                                                                                      "TxDefaultProfile"}),
                   "ReportChargingProfiles")
        ref = h201.events(csms)[-1]["transactionInfo"]["transactionId"]
        await step(csms, call201.RequestStopTransaction(transaction_id=ref), "TransactionEvent")
        await step(csms, call201.Reset(type="Immediate", evse_id=1), "StatusNotification")
        await step(csms, call201.RequestStartTransaction(id_token=token, remote_start_id=2, evse_id=1),
                   "TransactionEvent")
        await step(csms, call201.Reset(type="Immediate"), "TransactionEvent")
        await wait_until(lambda: agent.reset_requested is False)
