"""External charging limits (2.0.1 K12/K13) end to end: a limit contact on the mock HAL, driven over the
control socket, caps the pilot through the composite schedule, against the CSMS simulator."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timezone

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.config import ExternalLimitConfig, parse_config
from agent.errors import ConfigError
from hal.mock.client import request, run_sim
from tests.harness import agent_config, running_agent, wait_until

CARD = "04A1B2C3"


def limit_config(tmp_path, csms, *, evses: int = 1, **section):
    """A mock-HAL agent config with a ``[hal.external_limit]`` section (6 A from an EMS unless given)."""
    base = agent_config(tmp_path, csms.url, ocpp_version=csms.ocpp_version, evses=evses)
    limit = ExternalLimitConfig(**{"limit_A": 6.0, **section})
    return dataclasses.replace(base, hal=dataclasses.replace(base.hal, external_limit=limit))


async def switch(agent, active: bool) -> dict:
    """Close or open the limit contact through the control socket, as `ocpp-agent sim` does."""
    answer = await asyncio.to_thread(request, agent.mock_control.path, {"cmd": "external_limit", "active": active})
    assert answer["ok"], answer
    return answer


def offered(agent, evse: int = 1) -> float:
    return agent.hal.evse(evse).pilot.current_limit_A


def payloads(csms, action: str) -> list[dict]:
    return [r.payload for r in csms.calls(action)]


async def charge(agent, csms, tx_message: str) -> None:
    """Plug, tap, and let the EV draw: the contactor closes at the full 32 A."""
    await csms.wait_for_call("StatusNotification")
    agent.hal.plug(1)
    agent.hal.tap(CARD)
    await csms.wait_for_call(tx_message)
    agent.hal.ev_charge(1, True)
    await wait_until(lambda: agent.hal.evse(1).contactor.closed and offered(agent) == 32.0)


async def within_1s_of_the_edge(agent, active: bool, amps: float) -> None:
    loop = asyncio.get_running_loop()
    edge = loop.time()
    await switch(agent, active)
    await wait_until(lambda: offered(agent) == amps, timeout=1.0, interval=0.005)
    assert loop.time() - edge < 1.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def profile201(profile_id: int, purpose: str, amps: float) -> dict:
    return {"id": profile_id, "stack_level": 0, "charging_profile_purpose": purpose,
            "charging_profile_kind": "Absolute",
            "charging_schedule": [{"id": profile_id, "charging_rate_unit": "A", "start_schedule": iso(time.time() - 5),
                                   "charging_schedule_period": [{"start_period": 0, "limit": amps}]}]}


async def composite201(csms, evse: int, unit: str = "A") -> list[dict]:
    result = await csms.call("CP1", call201.GetCompositeSchedule(duration=600, evse_id=evse, charging_rate_unit=unit))
    assert result.status == "Accepted"
    return result.schedule["charging_schedule_period"]


# -- OCPP 2.0.1 ----------------------------------------------------------------------------------------------


async def test_extlimit201_caps_notifies_and_clears(tmp_path, csms201):
    csms = csms201
    async with running_agent(limit_config(tmp_path, csms, source="SO", grid_critical=True)) as agent:
        await charge(agent, csms, "TransactionEvent")
        await within_1s_of_the_edge(agent, True, 6.0)
        (notify,) = [r.payload for r in await csms.wait_for_call("NotifyChargingLimit")]
        assert notify["chargingLimit"] == {"chargingLimitSource": "SO", "isGridCritical": True}
        assert "evseId" not in notify  # the whole station
        (schedule,) = notify["chargingSchedule"]
        assert schedule["chargingRateUnit"] == "A" and "duration" not in schedule  # holds until cleared
        assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 6.0}]
        assert abs(datetime.fromisoformat(schedule["startSchedule"]).timestamp() - time.time()) < 5

        # Profiles from the CSMS above the cap do not lift it; the composite shows the cap.
        for body in (profile201(21, "ChargingStationMaxProfile", 20), profile201(22, "TxDefaultProfile", 16)):
            evse = 0 if body["charging_profile_purpose"] == "ChargingStationMaxProfile" else 1
            result = await csms.call("CP1", call201.SetChargingProfile(evse_id=evse, charging_profile=body))
            assert result.status == "Accepted"
        assert await composite201(csms, 1) == [{"start_period": 0, "limit": 6.0}]
        assert await composite201(csms, 0) == [{"start_period": 0, "limit": 6.0}]
        assert await composite201(csms, 1, "W") == [{"start_period": 0, "limit": 4140.0}]  # 6 A x 230 V x 3
        assert offered(agent) == 6.0 and agent.hal.evse(1).contactor.closed  # 6 A still charges

        await within_1s_of_the_edge(agent, False, 16.0)  # back to what the profiles allow
        (cleared,) = [r.payload for r in await csms.wait_for_call("ClearedChargingLimit")]
        assert cleared == {"chargingLimitSource": "SO"}
        assert await composite201(csms, 1) == [{"start_period": 0, "limit": 16.0}]


async def test_extlimit201_on_one_evse_names_it(tmp_path, csms201):
    csms = csms201
    async with running_agent(limit_config(tmp_path, csms, evses=2, evse=2, limit_A=10.0)) as agent:
        await csms.wait_for_call("StatusNotification")
        await switch(agent, True)
        (notify,) = [r.payload for r in await csms.wait_for_call("NotifyChargingLimit")]
        assert notify["evseId"] == 2 and notify["chargingLimit"] == {"chargingLimitSource": "EMS",
                                                                      "isGridCritical": False}
        assert await composite201(csms, 2) == [{"start_period": 0, "limit": 10.0}]
        assert await composite201(csms, 1) == [{"start_period": 0, "limit": 32.0}]  # the other EVSE is free
        assert await composite201(csms, 0) == [{"start_period": 0, "limit": 32.0}]
        await switch(agent, False)
        (cleared,) = [r.payload for r in await csms.wait_for_call("ClearedChargingLimit")]
        assert cleared == {"chargingLimitSource": "EMS", "evseId": 2}


async def test_extlimit201_lifted_while_offline_is_cleared_on_reconnect(tmp_path, csms201):
    csms = csms201
    async with running_agent(limit_config(tmp_path, csms)) as agent:
        await csms.wait_for_call("StatusNotification")
        await switch(agent, True)
        await csms.wait_for_call("NotifyChargingLimit")
        port = csms.port
        await csms.stop()
        await wait_until(lambda: agent.station.port is None)
        await switch(agent, False)  # nobody to tell now
        await csms.start(port=port)
        (cleared,) = [r.payload for r in await csms.wait_for_call("ClearedChargingLimit", timeout=10)]
        assert cleared == {"chargingLimitSource": "EMS"}
        assert len(csms.calls("NotifyChargingLimit")) == 1  # not in force now: not reported again


# -- OCPP 1.6 ------------------------------------------------------------------------------------------------


async def test_extlimit16_block_suspends_through_the_state_machine(tmp_path, csms16):
    csms = csms16
    async with running_agent(limit_config(tmp_path, csms, limit_A=0.0)) as agent:
        await charge(agent, csms, "StartTransaction")
        contactor = agent.hal.evse(1).contactor
        switched_by, set_output = [], contactor._set_output

        def watched(closed: bool) -> None:
            switched_by.append(asyncio.current_task().get_name())
            set_output(closed)

        contactor._set_output = watched
        mark = len(agent.hal.history)
        await within_1s_of_the_edge(agent, True, 0.0)
        await wait_until(lambda: not contactor.closed, timeout=1.0)
        await csms.wait_for(lambda: csms.status[("CP1", 1)] == "SuspendedEVSE")
        assert agent.station.evses[1].status.value == "SuspendedEVSE"
        # The offer went to 0 A before the power path opened, and the EVSE's own loop did both.
        changes = [(device, value) for _, device, value in agent.hal.history[mark:]]
        assert changes.index(("evse1.current_limit_A", 0.0)) < changes.index(("evse1.contactor", False))
        result = await csms.call("CP1", call16.GetCompositeSchedule(connector_id=1, duration=60))
        assert result.charging_schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 0.0}]

        await within_1s_of_the_edge(agent, False, 32.0)
        await wait_until(lambda: contactor.closed, timeout=1.0)
        await csms.wait_for(lambda: csms.status[("CP1", 1)] == "Charging")
        assert switched_by and set(switched_by) == {"evse-1"}
        assert agent.station.evses[1].transaction is not None  # suspended, never stopped
    assert csms.calls("NotifyChargingLimit") == [] and csms.calls("ClearedChargingLimit") == []


async def test_extlimit16_cap_beats_a_higher_profile(tmp_path, csms16):
    csms = csms16
    async with running_agent(limit_config(tmp_path, csms, limit_A=6.0)) as agent:
        await charge(agent, csms, "StartTransaction")
        await switch(agent, True)
        body = {"charging_profile_id": 5, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": {"charging_rate_unit": "A", "start_schedule": iso(time.time() - 5),
                                      "charging_schedule_period": [{"start_period": 0, "limit": 20}]}}
        result = await csms.call("CP1", call16.SetChargingProfile(connector_id=1, cs_charging_profiles=body))
        assert result.status == "Accepted"
        result = await csms.call("CP1", call16.GetCompositeSchedule(connector_id=1, duration=60))
        assert result.charging_schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 6.0}]
        assert offered(agent) == 6.0
        # `ocpp-agent sim external-limit off`, the operator's way to the same socket.
        assert await asyncio.to_thread(run_sim, ["external-limit", "off"], socket_path=agent.mock_control.path) == 0
        await wait_until(lambda: offered(agent) == 20.0, timeout=1.0)


# -- configuration -------------------------------------------------------------------------------------------


def raw_config(hal: dict, *, evse_gpio: dict | None = None) -> dict:
    evse = {"id": 1, **({"gpio": evse_gpio, "meter": {"driver": "modbus", "port": "/dev/ttyUSB1"}}
                        if evse_gpio else {})}
    return {"station": {"id": "CP1"}, "csms": {"url": "ws://127.0.0.1:9/ocpp"}, "evse": [evse], "hal": hal}


def problems(raw: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return {p.path: p.message for p in info.value.errors}


def test_extlimit_config_defaults_and_absence():
    assert parse_config(raw_config({"backend": "mock"})).hal.external_limit is None
    section = parse_config(raw_config({"backend": "mock", "external_limit": {}})).hal.external_limit
    assert section == ExternalLimitConfig(gpio=None, active_high=True, limit_A=0.0, source="EMS",
                                          grid_critical=False, evse=0)


def test_extlimit_config_errors_name_their_key_paths():
    found = problems(raw_config({"backend": "mock", "external_limit": {
        "limit_A": 3.0, "source": "CSO", "evse": 2, "limit_a": 6}}))
    assert found["hal.external_limit.limit_A"].startswith("the pilot cannot offer 0-6 A")
    assert found["hal.external_limit.source"] == "expected one of 'EMS', 'SO', 'Other', got 'CSO'"
    assert found["hal.external_limit.limit_a"] == 'unknown key (did you mean "limit_A"?)'
    assert len(found) == 3  # evse 2 is judged once the section itself is valid
    assert problems(raw_config({"backend": "mock", "external_limit": {"evse": 2}})) == {
        "hal.external_limit.evse": "no [[evse]] with id 2 (0 applies the limit to every EVSE)"}
    assert "must be a number >= 0" in problems(raw_config({"external_limit": {"limit_A": -1}}))[
        "hal.external_limit.limit_A"]


def test_extlimit_config_gpio_on_real_hardware():
    pins = {"contactor": 17, "contactor_feedback": 27, "pilot_plug": 5, "pilot_charge": 6}
    hal = {"backend": "raspberry-pi", "rfid": {"driver": "rdm6300", "port": "/dev/ttyUSB0"}}
    assert problems(raw_config({**hal, "external_limit": {"limit_A": 6.0}}, evse_gpio=pins)) == {
        "hal.external_limit.gpio": 'required with hal.backend = "raspberry-pi": the input line of the contact'}
    assert problems(raw_config({**hal, "external_limit": {"gpio": 5}}, evse_gpio=pins)) == {
        "hal.external_limit.gpio": "line 5 is already used by evse[0].gpio.pilot_plug"}
    config = parse_config(raw_config({**hal, "external_limit": {"gpio": 16, "active_high": False}}, evse_gpio=pins))
    assert config.hal.external_limit.gpio == 16
