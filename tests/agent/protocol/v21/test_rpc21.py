"""OCPP 2.1's RPC frames in the adapter base and the 2.1 adapter, over an in-memory connection pair.

The test plays the CSMS by hand: it writes raw frames into the station's inbox and reads what the
station writes, so every byte on the wire is asserted. The library (2.1.0) knows neither
CALLRESULTERROR (5) nor SEND (6), and leaves a 2.1 CALL without a handler unanswered.
"""

import asyncio
import itertools
import json
import logging

import pytest

from agent.protocol.common import rpc
from agent.protocol.common.adapter import StationInfo, parse_frame
from agent.protocol.v21.adapter import Ocpp21Adapter
from agent.runtime.clock import Clock
from agent.runtime.settings import Settings
from tests.harness.fakes import DictStore, MemoryConnection

STREAM = {"id": 1, "pending": 0, "basetime": "2025-01-01T00:00:00Z", "data": [{"t": 0.0, "v": "230.1"}]}


@pytest.fixture
async def station21():
    connection = MemoryConnection()
    adapter = Ocpp21Adapter("CP1", connection, station=StationInfo("Acme", "W1"), settings=Settings(DictStore()),
                            clock=Clock(), response_timeout_s=1.0)
    counter = itertools.count(1)
    adapter._unique_id_generator = lambda: f"id-{next(counter)}"
    reader = asyncio.create_task(adapter.start())
    yield adapter, connection
    reader.cancel()


# ------------------------------------------------------------------ parsing


def test_rpc21_parses_callresulterror_and_send():
    error = parse_frame('[5,"m1","FormatViolation","bad result",{"x":1}]', "2.1")
    assert (error.message_type, error.message_id, error.error_code, error.error_description, error.payload) == (
        5, "m1", "FormatViolation", "bad result", {"x": 1})
    send = parse_frame('[6,"m2","NotifyPeriodicEventStream",{"id":1}]', "2.1")
    assert (send.message_type, send.message_id, send.action, send.payload) == (
        6, "m2", "NotifyPeriodicEventStream", {"id": 1})


@pytest.mark.parametrize("raw", ['[5,"m1"]', '[5,"m1",7,"x"]', '[6,"m1","A"]', '[6,"m1","A",[]]', '[5,null,"X","y"]'])
def test_rpc21_malformed_unanswered_frames_are_dropped_not_answered(raw):
    assert parse_frame(raw, "2.1") is None


@pytest.mark.parametrize("version, code", [("2.0.1", "MessageTypeNotSupported"), ("1.6", "FormationViolation")])
def test_rpc21_types_5_and_6_stay_unknown_before_21(version, code):
    for kind in (5, 6):
        with pytest.raises(rpc.FrameError) as refused:
            parse_frame(f'[{kind},"m1","X","y",{{}}]', version)
        assert (refused.value.message_id, refused.value.code) == ("m1", code)


@pytest.mark.parametrize("kind", ["[1]", "{}", "5.0", "true", '"5"'])
def test_rpc21_a_message_type_that_is_no_int_is_refused_not_raised(kind):
    """[[1], ...] once reached the 2.1 type check and raised TypeError (a list is unhashable) in the reader."""
    with pytest.raises(rpc.FrameError) as refused:
        parse_frame(f'[{kind},"m1","X",{{}}]', "2.1")
    assert refused.value.code == "MessageTypeNotSupported"


def test_rpc21_words_errors_as_201_and_checks_send_schemas():
    for meaning in ("format", "occurrence", "rpc", "message_type", "unknown_action", "unsupported_action"):
        assert rpc.error_code("2.1", meaning) == rpc.error_code("2.0.1", meaning)
    assert rpc.validate("2.1", rpc.SEND, "NotifyPeriodicEventStream", STREAM) is None
    assert rpc.validate("2.1", rpc.SEND, "NotifyPeriodicEventStream", {"id": 1})[0] == "missing"
    assert json.loads(rpc.send_frame("s1", "NotifyPeriodicEventStream", STREAM)) == [
        6, "s1", "NotifyPeriodicEventStream", STREAM]


# ------------------------------------------------------------------ on the wire


async def test_rpc21_callresulterror_is_logged_counted_and_never_answered(station21, caplog):
    adapter, conn = station21
    await conn.inbox.put('[2,"m1","ClearCache",{}]')
    assert (await conn.next_out())[:2] == [4, "m1"]  # no core here: refused, but answered
    with caplog.at_level(logging.WARNING, logger="agent.ocpp21"):
        await conn.inbox.put('[5,"m1","FormatViolation","we cannot take this",{}]')
        await conn.inbox.put('[5,"m1","GenericError","again"]')
        await conn.inbox.put('[2,"m2","Heartbeat",{}]')  # the reader goes on
        assert await conn.next_out() == [4, "m2", "NotSupported", "Heartbeat is not supported by this station", {}]
    assert adapter.callresult_errors == 2
    assert adapter.last_callresult_error == ("m1", "GenericError", "again")
    assert "could not take our CALLRESULT 'm1': FormatViolation we cannot take this (1 on" in caplog.text
    assert conn.outbox.empty()


async def test_rpc21_send_from_the_csms_is_dropped_unanswered(station21):
    adapter, conn = station21
    await conn.inbox.put(json.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM]))
    await conn.inbox.put('[2,"m2","FlyToTheMoon",{}]')
    assert (await conn.next_out())[:3] == [4, "m2", "NotImplemented"]  # nothing for s1 came before
    assert adapter.callresult_errors == 0


async def test_rpc21_send_goes_out_unanswered_and_checked(station21):
    adapter, conn = station21
    assert await adapter.send_unanswered("NotifyPeriodicEventStream", STREAM)
    assert await conn.next_out() == [6, "id-1", "NotifyPeriodicEventStream", STREAM]
    with pytest.raises(ValueError, match="pending"):
        await adapter.send_unanswered("NotifyPeriodicEventStream", {"id": 1})
    conn.lost = True  # a dead connection: dropped, never queued
    assert not await adapter.send_unanswered("NotifyPeriodicEventStream", STREAM)


async def test_rpc21_every_unoffered_action_is_not_supported_and_unknown_ones_not_implemented(station21):
    adapter, conn = station21
    for i, action in enumerate(["SetDERControl", "RequestBatterySwap", "AFRRSignal",
                                "NotifyPeriodicEventStream", "ClearDERControl"]):
        await conn.inbox.put(json.dumps([2, f"k{i}", action, {}]))
        assert (await conn.next_out())[:3] == [4, f"k{i}", "NotSupported"], action
    await conn.inbox.put('[2,"u1","SetTariff",{}]')  # not a 2.1 action
    reply = await conn.next_out()
    assert reply[:3] == [4, "u1", "NotImplemented"] and "not an OCPP 2.1 action" in reply[3]
