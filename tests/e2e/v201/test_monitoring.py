"""OCPP 2.0.1 block N end to end: SetVariableMonitoring and friends against the CSMS simulator, monitors
evaluated on real meter readings and station changes, reported as NotifyEvent, and kept across a restart."""

import asyncio

import pytest
from ocpp.exceptions import OccurrenceConstraintViolationError
from ocpp.v201 import call as call201

from agent.core.device_model.monitoring import FIRST_CUSTOM_ID, Monitoring, MonitorRequest, preconfigured_monitors
from agent.errors import StoreError
from agent.protocol.v201.device_model import DeviceModelHandlers
from tests.harness import agent_config, running_agent, wait_until

CARD = "04A1B2C3"


def config(tmp_path, csms, **variables):
    return agent_config(tmp_path, csms.url, ocpp_version=csms.ocpp_version, variables=variables)


async def registered(csms):
    await csms.wait_for_call("StatusNotification")


async def ask(csms, payload):
    return await csms.call("CP1", payload)


def data(component, variable, type, value, *, evse=None, severity=5, instance=None, **extra):
    """One SetMonitoringData (snake_case, as the library takes it)."""
    comp = {"name": component}
    if evse is not None:
        comp["evse"] = evse if isinstance(evse, dict) else {"id": evse}
    var = {"name": variable} if instance is None else {"name": variable, "instance": instance}
    return {"component": comp, "variable": var, "type": type, "value": value, "severity": severity, **extra}


async def set_monitors(csms, *items):
    result = await ask(csms, call201.SetVariableMonitoring(set_monitoring_data=list(items)))
    return result.set_monitoring_result


def events(csms):
    return [d for r in csms.calls("NotifyEvent") for d in r.payload["eventData"]]


def of_monitor(csms, monitor_id):
    return [e for e in events(csms) if e.get("variableMonitoringId") == monitor_id]


def set_voltage(agent, volts, evse=1):
    # The mock meter has no voltage control yet: its supply voltage is fixed at construction.
    agent.hal.set_voltage(evse, volts)


async def trigger_meter_values(csms, count):
    """A meter reading now, asked for by the CSMS (TriggerMessage MeterValues); waits for its MeterValues."""
    assert (await ask(csms, call201.TriggerMessage(requested_message="MeterValues"))).status == "Accepted"
    await csms.wait_for_call("MeterValues", count=count)


# ------------------------------------------------------------------ N04 SetVariableMonitoring, N06 Clear

async def test_monitoring_set_variable_monitoring_answers_each_item(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await registered(csms)
        results = await set_monitors(
            csms,
            data("EVSE", "Power", "UpperThreshold", 5000, evse=1),
            data("Nope", "Power", "UpperThreshold", 1),
            data("EVSE", "Nope", "UpperThreshold", 1, evse=1),
            data("EVSE", "AvailabilityState", "UpperThreshold", 1, evse=1),  # not a number
            data("EVSE", "Power", "UpperThreshold", 10 ** 6, evse=1),  # above EVSE.Power's maxLimit
            data("OCPPCommCtrlr", "HeartbeatInterval", "Delta", 1),  # a setting: no monitoring
            data("EVSE", "Power", "Delta", -1, evse=1),
            data("EVSE", "Power", "UpperThreshold", 6000, evse=1),  # same type and severity as the first
            data("EVSE", "Power", "UpperThreshold", 6000, evse=1, id=4242),  # no such monitor to replace
            data("EVSE", "Power", "Periodic", 0.5, evse=1),  # too short a period
            data("EVSE", "Power", "LowerThreshold", 10, evse=1, severity=10),
        )
        assert [r["status"] for r in results] == [
            "Accepted", "UnknownComponent", "UnknownVariable", "Rejected", "Rejected", "UnsupportedMonitorType",
            "Rejected", "Duplicate", "Rejected", "Rejected", "Rejected"]
        first = results[0]
        assert first["id"] == FIRST_CUSTOM_ID and first["component"] == {"name": "EVSE", "evse": {"id": 1}}
        assert first["variable"] == {"name": "Power"} and first["type"] == "UpperThreshold"
        assert "numeric" in results[3]["status_info"]["additional_info"]
        assert all("id" not in r for r in results[1:])
        # Replacing by id keeps the id; a monitor cannot move to another variable.
        replaced, moved = await set_monitors(
            csms, data("evse", "power", "UpperThreshold", 7000, evse=1, id=first["id"]),
            data("EVSE", "Problem", "Delta", 0, evse=1, id=first["id"]))
        assert (replaced["status"], replaced["id"]) == ("Accepted", first["id"])
        assert moved["status"] == "Rejected"
        assert agent.core.monitoring.active[first["id"]].value == 7000
        with pytest.raises(OccurrenceConstraintViolationError):
            await set_monitors(csms, *[data("EVSE", "Power", "Delta", i, evse=1) for i in range(101)])


async def test_monitoring_clear_variable_monitoring(tmp_path, csms, monkeypatch):
    async with running_agent(config(tmp_path, csms)) as agent:
        await registered(csms)
        [power, problem] = await set_monitors(csms, data("EVSE", "Power", "Delta", 100, evse=1),
                                              data("EVSE", "Problem", "Delta", 0, evse=1))
        result = await ask(csms, call201.ClearVariableMonitoring(id=[power["id"], 999, 1]))
        # 1 is a preconfigured voltage monitor: the CSMS may clear it too (SetMonitoringBase brings it back).
        assert [(r["id"], r["status"]) for r in result.clear_monitoring_result] == [
            (power["id"], "Accepted"), (999, "NotFound"), (1, "Accepted")]
        assert power["id"] not in agent.core.monitoring.active and 1 not in agent.core.monitoring.active

        def broken(*args, **kwargs):
            raise StoreError("disk full")

        monkeypatch.setattr(agent.store, "put", broken)
        result = await ask(csms, call201.ClearVariableMonitoring(id=[problem["id"]]))
        monkeypatch.undo()  # the shutdown writes to the store too
        assert result.clear_monitoring_result == [{"id": problem["id"], "status": "Rejected"}]
        assert problem["id"] in agent.core.monitoring.active


# ------------------------------------------------------------------ N03 base, N05 level, N02 report

async def test_monitoring_base_level_and_report(tmp_path, csms, monkeypatch):
    limit = DeviceModelHandlers._limit  # ItemsPerMessage[GetReport] is a constant 100: two, to see parts
    monkeypatch.setattr(DeviceModelHandlers, "_limit", lambda self, variable, instance: 2 if (
        variable, instance) == ("ItemsPerMessage", "GetReport") else limit(self, variable, instance))
    async with running_agent(config(tmp_path, csms)) as agent:
        await registered(csms)
        [custom] = await set_monitors(csms, data("EVSE", "Power", "Periodic", 60, evse=1, transaction=True))
        assert (await ask(csms, call201.SetMonitoringLevel(severity=10))).status == "Rejected"
        assert (await ask(csms, call201.SetMonitoringLevel(severity=-1))).status == "Rejected"
        assert (await ask(csms, call201.SetMonitoringLevel(severity=3))).status == "Accepted"
        base = await ask(csms, call201.SetMonitoringBase(monitoring_base="All"))
        assert base.status == "Accepted"
        got = await ask(csms, call201.GetVariables(get_variable_data=[
            {"component": {"name": "MonitoringCtrlr"}, "variable": {"name": name}}
            for name in ("ActiveMonitoringBase", "ActiveMonitoringLevel", "Available", "Enabled",
                         "OfflineQueuingSeverity")]))
        assert [r["attribute_value"] for r in got.get_variable_result] == ["All", "3", "true", "true", "4"]

        # Everything: voltage thresholds (3 phases), the availability delta (base All), the custom one;
        # grouped by variable, two groups per message.
        result = await ask(csms, call201.GetMonitoringReport(request_id=7))
        assert result.status == "Accepted"
        reports = await csms.wait_for(lambda: (r := csms.calls("NotifyMonitoringReport")) and not r[-1].payload.get(
            "tbc") and r)
        assert [r.payload["seqNo"] for r in reports] == [0, 1, 2]
        assert [r.payload.get("tbc", False) for r in reports] == [True, True, False]
        assert {r.payload["requestId"] for r in reports} == {7}
        groups = [g for r in reports for g in r.payload["monitor"]]
        names = [(g["variable"]["name"], g["variable"].get("instance")) for g in groups]
        assert names == [("AvailabilityState", None), ("Power", None), ("Voltage", "L1-N"), ("Voltage", "L2-N"),
                         ("Voltage", "L3-N")]
        assert groups[1]["variableMonitoring"] == [{"id": custom["id"], "transaction": True, "value": 60,
                                                    "type": "Periodic", "severity": 5}]
        assert [m["type"] for m in groups[2]["variableMonitoring"]] == ["UpperThreshold", "LowerThreshold"]

        # Criteria and component variables narrow it.
        before = len(csms.calls("NotifyMonitoringReport"))
        result = await ask(csms, call201.GetMonitoringReport(
            request_id=8, monitoring_criteria=["ThresholdMonitoring"],
            component_variable=[{"component": {"name": "EVSE"}, "variable": {"name": "Voltage", "instance": "L2-N"}}]))
        assert result.status == "Accepted"
        [report] = (await csms.wait_for_call("NotifyMonitoringReport", count=before + 1))[before:]
        assert [g["variable"] for g in report.payload["monitor"]] == [{"name": "Voltage", "instance": "L2-N"}]
        result = await ask(csms, call201.GetMonitoringReport(request_id=9, monitoring_criteria=["DeltaMonitoring"],
                                                             component_variable=[{"component": {"name": "Connector"}}]))
        assert result.status == "EmptyResultSet"

        # FactoryDefault drops the custom monitor and the extra preset; HardWiredOnly leaves nothing.
        await ask(csms, call201.SetMonitoringBase(monitoring_base="FactoryDefault"))
        assert {m.type.value for m in agent.core.monitoring.active.values()} == {"UpperThreshold", "LowerThreshold"}
        await ask(csms, call201.SetMonitoringBase(monitoring_base="HardWiredOnly"))
        assert (await ask(csms, call201.GetMonitoringReport(request_id=10))).status == "EmptyResultSet"


# ------------------------------------------------------------------ N07 alerts on real meter readings

async def test_monitoring_threshold_trips_and_clears_on_meter_readings(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await registered(csms)
        [custom, quiet] = await set_monitors(
            csms, data("EVSE", "Voltage", "UpperThreshold", 240, evse=1, instance="L1-N", severity=2),
            data("EVSE", "Voltage", "UpperThreshold", 245, evse=1, instance="L2-N", severity=6))
        assert (await ask(csms, call201.SetMonitoringLevel(severity=4))).status == "Accepted"
        set_voltage(agent, 260)
        await trigger_meter_values(csms, 1)
        await wait_until(lambda: of_monitor(csms, custom["id"]) and of_monitor(csms, 1))
        [alert] = of_monitor(csms, custom["id"])
        assert alert["trigger"] == "Alerting" and alert["actualValue"] == "260"
        assert alert["eventNotificationType"] == "CustomMonitor" and "cleared" not in alert
        assert alert["component"] == {"name": "EVSE", "evse": {"id": 1}}
        assert alert["variable"] == {"name": "Voltage", "instance": "L1-N"}
        # The preconfigured +10 % monitor (253 V, severity 4) trips too.
        [preset] = of_monitor(csms, 1)
        assert preset["eventNotificationType"] == "PreconfiguredMonitor" and preset["actualValue"] == "260"
        # Severity 6 is above the active level 4: tripped, but not reported.
        assert not of_monitor(csms, quiet["id"])
        ids = [e["eventId"] for e in events(csms)]
        assert len(set(ids)) == len(ids)
        await trigger_meter_values(csms, 2)  # still beyond: nothing new to say
        set_voltage(agent, 230)
        await trigger_meter_values(csms, 3)
        await wait_until(lambda: len(of_monitor(csms, custom["id"])) == 2)
        cleared = of_monitor(csms, custom["id"])[1]
        assert cleared["cleared"] is True and cleared["actualValue"] == "230" and cleared["trigger"] == "Alerting"
        assert len(of_monitor(csms, 1)) == 2 and not of_monitor(csms, quiet["id"])


async def test_monitoring_power_threshold_during_a_transaction(tmp_path, csms):
    async with running_agent(config(tmp_path, csms, **{"SampledDataCtrlr.TxUpdatedInterval": 1})) as agent:
        await registered(csms)
        [power] = await set_monitors(csms, data("EVSE", "Power", "UpperThreshold", 5000, evse=1, transaction=True))
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        agent.hal.ev_charge(1, True)
        agent.hal.set_power(1, 7200)
        await wait_until(lambda: of_monitor(csms, power["id"]), timeout=4)
        [alert] = of_monitor(csms, power["id"])
        assert alert["actualValue"] == "7200" and alert["transactionId"] == agent.station.transaction_ref(1)


async def test_monitoring_delta_on_availability_and_periodic_timers(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await registered(csms)
        [delta, periodic, aligned] = await set_monitors(
            csms, data("Connector", "AvailabilityState", "Delta", 0, evse={"id": 1, "connector_id": 1}),
            data("ChargingStation", "Problem", "Periodic", 1),
            data("EVSE", "AvailabilityState", "PeriodicClockAligned", 1, evse=1))
        assert (delta["status"], periodic["status"], aligned["status"]) == ("Accepted",) * 3
        agent.hal.plug(1)
        await wait_until(lambda: of_monitor(csms, delta["id"]))
        [changed] = of_monitor(csms, delta["id"])
        assert changed["trigger"] == "Delta" and changed["actualValue"] == "Occupied"
        assert changed["component"] == {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
        await wait_until(lambda: of_monitor(csms, periodic["id"]) and of_monitor(csms, aligned["id"]), timeout=3)
        tick = of_monitor(csms, periodic["id"])[0]
        assert tick["trigger"] == "Periodic" and tick["actualValue"] == "false"
        assert of_monitor(csms, aligned["id"])[0]["timestamp"][20:23] < "500"  # close to a whole second
        await ask(csms, call201.ClearVariableMonitoring(id=[periodic["id"]]))
        count = len(of_monitor(csms, periodic["id"]))
        await asyncio.sleep(1.1)
        assert len(of_monitor(csms, periodic["id"])) == count  # its timer went with it
        # MonitoringCtrlr.Enabled off: the unplug changes the connector's state, and nobody is told.
        result = await ask(csms, call201.SetVariables(set_variable_data=[{
            "component": {"name": "MonitoringCtrlr"}, "variable": {"name": "Enabled"}, "attribute_value": "false"}]))
        assert result.set_variable_result[0]["attribute_status"] == "Accepted"
        statuses = len(csms.calls("StatusNotification"))
        agent.hal.unplug(1)
        await csms.wait_for_call("StatusNotification", count=statuses + 1)
        await asyncio.sleep(0.1)  # a NotifyEvent would have been sent right after the status
        assert len(of_monitor(csms, delta["id"])) == 1


# ------------------------------------------------------------------ persistence and offline queuing

async def test_monitoring_survives_a_restart(tmp_path, csms):
    cfg = config(tmp_path, csms)
    async with running_agent(cfg) as agent:
        await registered(csms)
        [tripped, other] = await set_monitors(
            csms, data("EVSE", "Voltage", "UpperThreshold", 240, evse=1, instance="L1-N"),
            data("EVSE", "Power", "Delta", 500, evse=1, severity=2))
        await ask(csms, call201.SetMonitoringLevel(severity=6))
        set_voltage(agent, 250)
        await trigger_meter_values(csms, 1)
        await wait_until(lambda: of_monitor(csms, tripped["id"]))
    reported = len(csms.calls("StatusNotification"))
    # Back up with 230 V (a fresh mock meter): the trip from before the restart is cleared (N07.FR.14).
    async with running_agent(cfg) as agent:
        monitoring = agent.core.monitoring
        assert {tripped["id"], other["id"]} <= set(monitoring.active) and monitoring.level == 6
        await csms.wait_for(lambda: len(csms.calls("StatusNotification")) > reported)  # registered again
        await trigger_meter_values(csms, 2)
        await wait_until(lambda: len(of_monitor(csms, tripped["id"])) == 2)
        assert of_monitor(csms, tripped["id"])[1]["cleared"] is True
        [new] = await set_monitors(csms, data("EVSE", "Problem", "Delta", 0, evse=1))
        assert new["id"] == other["id"] + 1  # ids are never reused


async def test_monitoring_queues_severe_events_while_offline(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await registered(csms)
        [severe, mild] = await set_monitors(
            csms, data("EVSE", "Voltage", "UpperThreshold", 240, evse=1, instance="L1-N", severity=3),
            data("EVSE", "Voltage", "UpperThreshold", 241, evse=1, instance="L1-N", severity=7))
        # Hold the station offline for a moment: the CSMS refuses its connections (HTTP 401).
        csms.behaviour.password = "not-the-stations-password"
        await csms.drop_connections()
        await wait_until(lambda: not agent.session.connected.is_set(), timeout=4)
        set_voltage(agent, 250)
        assert await agent.sampler.sample_now(1, ["Voltage"], context="Other") is not None  # a reading, offline
        assert not of_monitor(csms, severe["id"])
        csms.behaviour.password = None  # back: the station reconnects and resumes its registration
        await wait_until(lambda: of_monitor(csms, severe["id"]), timeout=6)
        assert not of_monitor(csms, mild["id"])  # severity 7 > OfflineQueuingSeverity 4: dropped


# ------------------------------------------------------------------ the core alone

def test_monitoring_preconfigured_monitors_per_phase():
    presets = preconfigured_monitors({1: 1, 2: 3})
    assert [(p.monitor.id, p.monitor.component.evse_id, p.monitor.instance, p.monitor.value, p.factory_default)
            for p in presets][:3] == [(1, 1, "L1-N", 253.0, True), (2, 1, "L1-N", 207.0, True),
                                      (3, 1, None, 0, False)]
    assert len(presets) == 3 + 7


def test_monitoring_request_without_device_model_variable_is_unknown(tmp_path):
    from agent.core.device_model import DeviceModel
    from agent.runtime.settings import Settings
    from agent.runtime.store import StateStore

    with StateStore(tmp_path / "s.sqlite") as store:
        settings = Settings(store)
        model = DeviceModel(settings, evse_ids=[1])  # no live values supplied: no EVSE.Power
        monitoring = Monitoring(store, device_model=model, settings=settings, clock=None,
                                presets=preconfigured_monitors({1: 3}))
        assert monitoring.active == {}  # presets on variables this station lacks are left out
        result = monitoring.set_monitor(MonitorRequest("EVSE", "Power", "Delta", 1, 5, evse_id=1))
        assert result.status.value == "UnknownVariable"
