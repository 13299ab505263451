"""Power cuts: SIGKILL the real agent mid-session, mid-write, mid-CALL, offline and during replay.

The smoke test makes three cuts per version; the full-size run makes ``RELIABILITY_POWER_CUTS``
(default 60) per version of every kind in turn, both versions at once.
"""

import asyncio
import json
import re

import pytest

from agent.testcsms.server import CsmsSimulator
from tests.harness import agent_config, running_agent
from tests.reliability.conftest import full_size
from tests.reliability.power_cuts import MODES, PowerCutCampaign, assert_exactly_once


async def _both_versions(tmp_path, cuts: int, figures, name: str, *, pace: float = 1.0, modes=None):
    modes = modes or {"1.6": MODES, "2.0.1": MODES}
    results = await asyncio.gather(
        PowerCutCampaign(tmp_path / "v16", "1.6", seed=name, pace=pace, modes=modes["1.6"]).run(cuts),
        PowerCutCampaign(tmp_path / "v201", "2.0.1", seed=name, pace=pace, modes=modes["2.0.1"]).run(cuts))
    for result in results:
        figures.record("power_cuts", f"{name} {result.version}", **result.figures())
    for result in results:
        assert_exactly_once(result, min_transactions=cuts // 3)
    return results


# The default run's crash suite (tests/agent/test_crash_recovery.py) already cuts mid-session;
# the smoke test adds the other kinds, shared out between the versions.
SMOKE_MODES = {"1.6": ("mid_call", "replay", "mid_write"), "2.0.1": ("mid_call", "replay", "offline")}


async def test_power_cuts_smoke_every_kind_of_cut(tmp_path, figures):
    results = await _both_versions(tmp_path, 3, figures, "smoke", pace=0.5, modes=SMOKE_MODES)
    for result in results:
        assert set(result.cuts) == set(SMOKE_MODES[result.version])
        assert result.kills >= 4  # a replay cut kills twice: offline, then during the replay


@pytest.mark.reliability
async def test_power_cuts_full_campaign(tmp_path, figures):
    cuts = int(full_size("RELIABILITY_POWER_CUTS", 60))
    results = await _both_versions(tmp_path, cuts, figures, "full")
    assert sum(result.kills for result in results) >= 100


DECIMAL = re.compile(r"^\d+(\.\d+)?$")


async def test_power_cuts_16_meter_values_keep_full_precision_on_a_used_meter(tmp_path):
    # A charger's lifetime register passes 1 MWh within months; the mock meter keeps it in mock-meter.json.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mock-meter.json").write_text(json.dumps({"version": 1, "energy_Wh": {"1": 1234567.8}}))
    csms = CsmsSimulator(ocpp_version="1.6")
    await csms.start()
    try:
        config = agent_config(tmp_path, csms.url, configuration={"MeterValueSampleInterval": 1})
        async with running_agent(config) as agent:
            await csms.wait_for_call("StatusNotification")
            agent.hal.plug(1)
            agent.hal.tap("04A1B2C3")
            agent.hal.ev_charge(1, True)
            agent.hal.set_power(1, 11000)
            await csms.wait_for_call("MeterValues", timeout=6)
            agent.hal.unplug(1)
            stop = (await csms.wait_for_call("StopTransaction"))[0].payload
    finally:
        await csms.stop()
    start = csms.calls("StartTransaction")[0].payload
    values = [v["value"] for call in csms.calls("MeterValues") for element in call.payload["meterValue"]
              for v in element["sampledValue"] if v.get("measurand", "Energy.Active.Import.Register")
              == "Energy.Active.Import.Register"]
    assert all(DECIMAL.match(v) for v in values), values
    readings = [start["meterStart"], *map(float, values), stop["meterStop"]]
    assert all(b >= a - 0.5 for a, b in zip(readings, readings[1:])), readings
