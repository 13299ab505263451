"""What 2.1 changes in the use cases 2.0.1 already has, against the test CSMS over a real WebSocket:
2.1's new fields where the station has something to say, and 2.1's new options refused with the reason
where it cannot honour them yet (never Accepted and ignored). The 2.0.1 suites run under 2.1 as well
(tests/e2e/v201/conftest.py); these are the differences."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ocpp.v21 import call as call21

from tests.harness import running_agent, wait_until
from tests.harness.v201 import CARD, charge, config, reach_status


def iso(seconds_from_now: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + seconds_from_now, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def profile(profile_id: int, limit: float, *, purpose="TxDefaultProfile", kind="Absolute", **extra) -> dict:
    return {"id": profile_id, "stack_level": 0, "charging_profile_purpose": purpose, "charging_profile_kind": kind,
            "charging_schedule": [{"id": 1, "charging_rate_unit": "A", "start_schedule": iso(-5),
                                   "charging_schedule_period": [{"start_period": 0, "limit": limit}]}], **extra}


async def test_v21_profiles_in_201_terms_work_and_21_options_are_refused_with_the_reason(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await charge(agent, csms)
        assert (await csms.call("CP1", call21.SetChargingProfile(evse_id=1, charging_profile=profile(11, 13)))
                ).status == "Accepted"
        await wait_until(lambda: agent.hal.evse(1).pilot.current_limit_A == 13)
        for refused, words in (
                (profile(13, 10, purpose="LocalGeneration"), "no local generation input"),
                (profile(14, 10, max_offline_duration=600), "maxOfflineDuration: not yet")):
            result = await csms.call("CP1", call21.SetChargingProfile(evse_id=1, charging_profile=refused))
            assert result.status == "Rejected" and result.status_info["reason_code"] == "UnsupportedParam"
            assert words in result.status_info["additional_info"]
        v2x = profile(15, 10)
        v2x["charging_schedule"][0]["charging_schedule_period"][0].update(setpoint=-3000.0,
                                                                          operation_mode="CentralSetpoint")
        result = await csms.call("CP1", call21.SetChargingProfile(evse_id=1, charging_profile=v2x))
        assert result.status == "Rejected" and "V2X" in result.status_info["additional_info"]
        # A purpose only 2.1 has matches nothing: never every profile.
        found = await csms.call("CP1", call21.GetChargingProfiles(request_id=3, charging_profile={
            "charging_profile_purpose": "LocalGeneration"}))
        assert found.status == "NoProfiles"
        cleared = await csms.call("CP1", call21.ClearChargingProfile(charging_profile_criteria={
            "charging_profile_purpose": "LocalGeneration"}))
        assert cleared.status == "Unknown"
        assert agent.hal.evse(1).pilot.current_limit_A == 13  # profile 11 still holds, alone
        composite = await csms.call("CP1", call21.GetCompositeSchedule(duration=300, evse_id=1))
        assert composite.schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 13.0}]
        assert csms.schema_errors == []


async def test_v21_monitoring_report_says_who_made_each_monitor_and_a_delta_cannot_stream(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        power = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}}
        result = await csms.call("CP1", call21.SetVariableMonitoring(set_monitoring_data=[
            {**power, "type": "Delta", "value": 60, "severity": 5,  # streams: periodic monitors only
             "periodic_event_stream": {"interval": 10, "values": 1}},
            {**power, "type": "Periodic", "value": 30, "severity": 6},
            {**power, "type": "TargetDelta", "value": 100, "severity": 6}]))
        streamed, plain, target = result.set_monitoring_result
        assert streamed["status"] == "Rejected" and "periodic event stream needs a Periodic" in streamed[
            "status_info"]["additional_info"]
        assert plain["status"] == "Accepted" and target["status"] == "UnsupportedMonitorType"
        installed = [(m.type.value, m.value) for m in agent.core.monitoring.active.values()]
        assert ("Periodic", 30) in installed and ("Delta", 60) not in installed  # the refused one is not
        assert (await csms.call("CP1", call21.GetMonitoringReport(request_id=4))).status == "Accepted"
        reports = await csms.wait_for(lambda: (r := csms.calls("NotifyMonitoringReport")) and not r[-1].payload.get(
            "tbc") and r)
        kinds = {(g["variable"]["name"], m["type"]): m["eventNotificationType"]
                 for r in reports for g in r.payload["monitor"] for m in g["variableMonitoring"]}
        assert kinds[("Power", "Periodic")] == "CustomMonitor"
        assert kinds[("Voltage", "UpperThreshold")] == "PreconfiguredMonitor"
        assert csms.schema_errors == []


async def test_v21_display_network_and_trigger_refuse_what_2_1_adds_and_the_station_cannot(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)):
        await reach_status(csms, "Available")
        qr = {"id": 1, "priority": "NormalCycle", "message": {"format": "QRCODE", "content": "https://pay.example"}}
        assert (await csms.call("CP1", call21.SetDisplayMessage(message=qr))).status == "NotSupportedMessageFormat"
        suspended = {"id": 2, "priority": "NormalCycle", "state": "Suspended",
                     "message": {"format": "UTF8", "content": "Paused"}}
        result = await csms.call("CP1", call21.SetDisplayMessage(message=suspended))
        assert result.status == "Rejected" and "Suspended" in result.status_info["additional_info"]
        plain = {"id": 3, "priority": "NormalCycle", "message": {"format": "UTF8", "content": "Welcome"}}
        assert (await csms.call("CP1", call21.SetDisplayMessage(message=plain))).status == "Accepted"

        def network(**extra):
            return call21.SetNetworkProfile(configuration_slot=1, connection_data={
                "ocpp_transport": "JSON", "ocpp_csms_url": csms.url, "message_timeout": 20, "security_profile": 0,
                "ocpp_interface": "Wired0", **extra})

        for extra, words in (({"ocpp_version": "OCPP20"}, "speaks OCPP 2.1 here"),
                             ({"identity": "CP2"}, "another identity"),
                             ({"basic_auth_password": "0123456789abcdef"}, "a password per profile")):
            result = await csms.call("CP1", network(**extra))
            assert result.status == "Rejected" and words in result.status_info["additional_info"], extra
        assert (await csms.call("CP1", network())).status == "Accepted"  # 2.1 leaves ocppVersion out
        assert (await csms.call("CP1", network(ocpp_version="OCPP21", identity="CP1"))).status == "Accepted"
        trigger = await csms.call("CP1", call21.TriggerMessage(requested_message="CustomTrigger",
                                                               custom_trigger="com.example.Ping"))
        assert trigger.status == "NotImplemented"
        assert csms.schema_errors == []


async def test_v21_a_tariff_and_a_transaction_limit_in_the_answers_are_applied(tmp_path, csms, caplog):
    import json
    import logging

    caplog.set_level(logging.WARNING, logger="agent.ocpp21")
    tariff = {"tariffId": "T1", "currency": "EUR"}

    def answers(station_id, text):  # the CSMS answers with 2.1's extras (valid 2.1 payloads)
        frame = json.loads(text)
        if frame[0] == 2 and frame[2] == "Authorize":
            return json.dumps([3, frame[1], {"idTokenInfo": {"status": "Accepted"}, "tariff": tariff}])
        if frame[0] == 2 and frame[2] == "TransactionEvent" and frame[3]["eventType"] == "Started":
            return json.dumps([3, frame[1], {"transactionLimit": {"maxEnergy": 500.0}}])
        return None

    csms.behaviour.frame_hook = answers  # answered raw: the CSMS does not record these two
    async with running_agent(config(tmp_path, csms)) as agent:
        await reach_status(csms, "Available")
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        # The limit is enforced now (tests/e2e/v21/test_transaction_limits.py): set, and not reached yet;
        # the driver tariff prices the session (tests/e2e/v21/test_tariffs.py).
        await wait_until(lambda: agent.station.transaction_limit(agent.station.evse(1).transaction_ref))
        assert agent.station.busy(1) and "not applied" not in caplog.text
        assert agent.station.tariff_book().bind(agent.station.evse(1).transaction_ref, 1)["tariff_id"] == "T1"
