"""OCPP 2.0.1 monitors on live values: evaluated on every poll of the meter, not only when a sample is taken.

An in-process agent on the mock HAL against the CSMS simulator. The meter is polled every POLL_S and
TxUpdatedInterval is an hour, so no transaction sample reads the meter in between: a threshold crossed on
EVSE.Power is reported within one poll interval all the same. A trip the CSMS was told of and whose value
comes back while the CSMS is away is cleared once it can hear it, whatever OfflineQueuingSeverity says.
"""

from __future__ import annotations

import time

from ocpp.v201 import call as call201

from agent.config import parse_config
from tests.harness import FAST_RETRY, running_agent, wait_until
from tests.harness import v201

POLL_S = 0.5  # [evse.meter] poll_interval_s
MARGIN_S = 0.5  # the event's way out to the CSMS on a loaded machine
HOUR_S = 3600


def config(tmp_path, csms):
    """One EVSE whose mock meter is polled every POLL_S; transaction samples once an hour only."""
    return parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
        "csms": {"url": csms.url, "ocpp_version": "2.0.1", "response_timeout_s": 5.0},
        "evse": [{"id": 1, "meter": {"poll_interval_s": POLL_S}}],
        "hal": {"backend": "mock"},
        "ocpp201": {"variables": {**FAST_RETRY, "SampledDataCtrlr.TxUpdatedInterval": HOUR_S,
                                  "AlignedDataCtrlr.Interval": 0}},
    })


async def set_monitor(csms, variable: str, value: float, *, severity: int, instance: str | None = None) -> int:
    """SetVariableMonitoring UpperThreshold on EVSE 1's ``variable``; returns the monitor id."""
    data = {"component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": variable} if instance is None else {"name": variable, "instance": instance},
            "type": "UpperThreshold", "value": value, "severity": severity}
    [result] = (await csms.call("CP1", call201.SetVariableMonitoring(set_monitoring_data=[data]))).set_monitoring_result
    assert result["status"] == "Accepted", result
    return result["id"]


def of_monitor(csms, monitor_id: int) -> list[dict]:
    """The NotifyEvent items of one monitor, oldest first."""
    return [d for r in csms.calls("NotifyEvent") for d in r.payload["eventData"]
            if d.get("variableMonitoringId") == monitor_id]


def meter_values_sent(csms) -> int:
    """How many messages carried meter values so far (TransactionEvent meterValue, MeterValues)."""
    return (sum(1 for e in v201.events(csms) if e.get("meterValue")) + len(csms.calls("MeterValues")))


async def charging_at_3_kW(agent, csms):
    """A session on EVSE 1 drawing 3 kW, once the meter's published reading shows it; returns the meter."""
    await csms.wait_for_call("StatusNotification")
    agent.hal.plug(1)
    agent.hal.tap(v201.CARD)
    await csms.wait_for(lambda: any(e["eventType"] == "Started" for e in v201.events(csms)))
    agent.hal.ev_charge(1, True)
    agent.hal.set_power(1, 3000)
    meter = agent.hal.evse(1).meter
    await wait_until(lambda: meter.latest is not None and meter.latest.power_W == 3000, timeout=3)
    return meter


async def test_live_monitors_power_threshold_fires_within_one_poll(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        meter = await charging_at_3_kW(agent, csms)
        monitor = await set_monitor(csms, "Power", 5000, severity=5)
        samples = meter_values_sent(csms)
        assert not of_monitor(csms, monitor)  # 3 kW is below the threshold

        raised = time.monotonic()
        agent.hal.set_power(1, 9000)  # the EV takes more: nothing samples the meter for an hour
        await wait_until(lambda: of_monitor(csms, monitor), timeout=POLL_S + MARGIN_S + 2, interval=0.005)
        took = time.monotonic() - raised
        [alert] = of_monitor(csms, monitor)
        assert meter_values_sent(csms) == samples  # the poll found it, not a transaction sample
    assert took <= POLL_S + MARGIN_S, took
    assert alert["trigger"] == "Alerting" and alert["actualValue"] == "9000" and "cleared" not in alert
    assert alert["transactionId"] == v201.events(csms)[0]["transactionInfo"]["transactionId"]


async def test_live_monitors_trip_held_by_the_csms_clears_once_it_can_hear(tmp_path, csms):
    async with running_agent(config(tmp_path, csms)) as agent:
        await csms.wait_for_call("StatusNotification")
        # Severity 5: above OfflineQueuingSeverity (4), so an ordinary event made offline is dropped.
        monitor = await set_monitor(csms, "Voltage", 240, severity=5, instance="L1-N")
        agent.hal.set_voltage(1, 250)
        await wait_until(lambda: of_monitor(csms, monitor), timeout=POLL_S + 2)
        port = csms.port
        await csms.stop()  # the CSMS goes away, holding the trip
        await wait_until(lambda: agent.station.port is None, timeout=3)
        agent.hal.set_voltage(1, 230)  # back to normal while nobody can hear it
        meter = agent.hal.evse(1).meter
        polled = meter.latest_at
        await wait_until(lambda: meter.latest_at != polled and meter.latest.voltage_V[0] == 230, timeout=2)
        await csms.start(port=port)
        await wait_until(lambda: len(of_monitor(csms, monitor)) == 2, timeout=10)
    cleared = of_monitor(csms, monitor)[1]
    assert cleared["cleared"] is True and cleared["actualValue"] == "230"


async def test_live_monitors_current_per_phase_is_a_monitorable_variable(tmp_path, csms):
    """EVSE.Current[L1] reads the meter's line current, and a threshold on it fires within one poll."""
    async with running_agent(config(tmp_path, csms)) as agent:
        meter = await charging_at_3_kW(agent, csms)
        amps = meter.latest.current_A[0]
        asked = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Current", "instance": "L1"}}
        [got] = (await csms.call("CP1", call201.GetVariables(get_variable_data=[asked]))).get_variable_result
        assert got["attribute_status"] == "Accepted" and abs(float(got["attribute_value"]) - amps) < 0.001
        monitor = await set_monitor(csms, "Current", round(amps * 2, 1), severity=5, instance="L1")
        assert not of_monitor(csms, monitor)
        agent.hal.set_power(1, 9000)  # three times the current: over the threshold at the next poll
        await wait_until(lambda: of_monitor(csms, monitor), timeout=POLL_S + MARGIN_S + 2, interval=0.005)
        [alert] = of_monitor(csms, monitor)
    assert alert["trigger"] == "Alerting" and float(alert["actualValue"]) > amps * 2
