"""``ocpp-agent status`` as a user runs it: a real process against a running agent on the mock HAL."""

from __future__ import annotations

import asyncio
import json
import sys

from agent.config import load_config
from tests.harness import running_agent, wait_until
from tests.harness.v16 import CARD, reach_status

API_STATUS_KEYS = {"connected", "csms_url", "ocpp_version", "evses"}
API_EVSE_KEYS = {"id", "status", "power_W", "energy_Wh", "transaction_id", "faults"}


def write_config(tmp_path, url: str):
    path = tmp_path / "agent.toml"
    path.write_text(f"""
[station]
id = "CP1"
data_dir = "{tmp_path / 'data'}"

[csms]
url = "{url}"
ocpp_version = "1.6"

[[evse]]
id = 1
[evse.meter]
poll_interval_s = 0.2

[hal]
backend = "mock"
""")
    return path


async def status_command(*args: str) -> tuple[int, str, str]:
    """Run ``python -m agent status ARGS`` without blocking the loop the agent runs on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent", "status", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def test_status_command_summary_and_json_of_a_charging_agent(tmp_path, csms):
    path = write_config(tmp_path, csms.url)
    async with running_agent(load_config(path)) as agent:
        await reach_status(csms, "Available")
        agent.hal.plug(1)
        agent.hal.tap(CARD)
        agent.hal.ev_charge(1, True)
        agent.hal.set_power(1, 7200)
        await reach_status(csms, "Charging")
        await wait_until(lambda: (r := agent.hal.evse(1).meter.latest) is not None and r.power_W == 7200)

        code, out, err = await status_command("--config", str(path))
        assert code == 0, err
        assert f"Connected: {csms.url}/CP1" in out and "OCPP 1.6" in out
        assert "EVSE 1: Charging" in out and "7.20 kW" in out and "transaction  1" in out
        assert "faults       none" in out and " kWh" in out

        agent.hal.inject_fault(1, "rcd-trip")
        await reach_status(csms, "Faulted")
        await csms.wait_for_call("StopTransaction")  # the trip ends the session
        code, out, err = await status_command("--config", str(path), "--json")
        assert code == 0, err
        status = json.loads(out)
        assert API_STATUS_KEYS <= set(status) and status["connected"] is True
        (evse,) = status["evses"]
        assert API_EVSE_KEYS <= set(evse)
        assert evse["status"] == "Faulted" and "rcd-trip" in evse["faults"]
        assert evse["transaction_id"] is None and evse["energy_Wh"] is None and evse["power_W"] == 0.0


async def test_status_command_without_an_agent_exits_2(tmp_path):
    path = write_config(tmp_path, "ws://127.0.0.1:9/ocpp")
    code, out, err = await status_command("--config", str(path))
    assert code == 2 and out == ""
    assert "no agent is running" in err and str(tmp_path / "data" / "agent.sock") in err
