"""UpdateDynamicSchedule on the wire, over an in-memory connection: 2.1 spells the per-phase fields
``limit_L2`` / ``limit_L3`` (which the ``ocpp`` library cannot write: it camel-cases them), and the station
refuses them with the reason before the profile is looked at."""

import asyncio
import json

import pytest

from agent.protocol.common.adapter import StationInfo
from agent.protocol.v21.adapter import Ocpp21Adapter
from agent.runtime.clock import Clock
from agent.runtime.settings import Settings
from tests.harness.fakes import DictStore, MemoryConnection


@pytest.fixture
async def station21():
    connection = MemoryConnection()
    adapter = Ocpp21Adapter("CP1", connection, station=StationInfo("Acme", "W1"), settings=Settings(DictStore()),
                            clock=Clock(), response_timeout_s=1.0)
    reader = asyncio.create_task(adapter.start())
    yield connection
    reader.cancel()


@pytest.mark.parametrize("update, words", [
    ({"limit": 8.0, "limit_L2": 8.0, "limit_L3": 8.0}, "per-phase limits"),
    ({"limit": 8.0, "setpointReactive_L3": 1.0}, "needs bidirectional (V2X)"),
])
async def test_dynamic21_update_with_what_an_ac_pilot_cannot_do_is_rejected_with_the_reason(station21, update, words):
    await station21.inbox.put(json.dumps([2, "u1", "UpdateDynamicSchedule",
                                          {"chargingProfileId": 1, "scheduleUpdate": update}]))
    reply = await station21.next_out()
    assert reply[:2] == [3, "u1"] and reply[2]["status"] == "Rejected"
    info = reply[2]["statusInfo"]
    assert info["reasonCode"] == "UnsupportedParam" and words in info["additionalInfo"]
