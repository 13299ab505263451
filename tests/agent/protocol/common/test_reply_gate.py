"""The reply gate of the adapter base, over an in-memory connection: a CSMS request is answered before any
CALL of the station goes out, and a handler that awaits a CALL of its own is refused instead of hanging."""

import asyncio
import itertools
import json

import pytest
from ocpp.routing import after, on
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16

from agent.errors import ConnectionLost
from agent.protocol.common.adapter import StationInfo
from agent.protocol.common.reply_gate import HandlerAwaitsCall, ReplyGate
from agent.protocol.v16.adapter import Ocpp16Adapter
from agent.runtime.clock import Clock
from agent.runtime.settings import Settings
from tests.harness.fakes import MemoryStore


class Pipe:
    """The station's end of an in-memory connection; the test plays the CSMS at the other end."""

    def __init__(self):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.sent: list[list] = []
        self._new = asyncio.Event()

    async def recv(self) -> str:
        text = await self.inbox.get()
        if text is None:
            raise ConnectionLost("peer closed")
        return text

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self._new.set()

    async def wait_sent(self, count: int, timeout: float = 2.0) -> list[list]:
        async def until():
            while len(self.sent) < count:
                self._new.clear()
                await self._new.wait()
        await asyncio.wait_for(until(), timeout)
        return self.sent


class Station(Ocpp16Adapter):
    """Handlers that send follow-ups the three ways an adapter can: a task, an @after hook, and (wrongly)
    awaiting the CALL inside the handler."""

    release = None  # an asyncio.Event the slow handler waits for

    @on("ClearCache")
    async def on_clear_cache(self, **_):
        self.spawn(self.call(call16.Heartbeat()), name="follow-up")  # a status the core reports meanwhile
        await self.release.wait()  # the handler is still working: nothing may go out
        return result16.ClearCache(status="Accepted")

    @on("DataTransfer")
    def on_data_transfer(self, vendor_id, **_):
        return result16.DataTransfer(status="Accepted")

    @after("DataTransfer")
    async def after_data_transfer(self, vendor_id, **_):
        await self.call(call16.Heartbeat())

    @on("GetLocalListVersion")
    async def on_get_local_list_version(self, **_):
        await self.call(call16.Heartbeat())  # forbidden: awaits its own follow-up
        return result16.GetLocalListVersion(list_version=1)


@pytest.fixture
async def station():
    pipe = Pipe()
    adapter = Station("CP1", pipe, station=StationInfo("Acme", "W1"), settings=Settings(MemoryStore()),
                      clock=Clock(), response_timeout_s=1.0)
    counter = itertools.count(1)
    adapter._unique_id_generator = lambda: f"id-{next(counter)}"
    adapter.release = asyncio.Event()
    reader = asyncio.create_task(adapter.start())
    yield adapter, pipe
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)


async def test_reply_gate_holds_a_call_until_the_answer_is_written(station):
    adapter, pipe = station
    await pipe.inbox.put('[2,"r1","ClearCache",{}]')
    await asyncio.sleep(0.05)  # the follow-up task has run up to the gate
    assert pipe.sent == []
    adapter.release.set()
    sent = await pipe.wait_sent(2)
    assert [frame[:2] for frame in sent] == [[3, "r1"], [2, "id-1"]]


async def test_reply_gate_after_hook_runs_after_the_answer(station):
    _, pipe = station
    await pipe.inbox.put('[2,"r1","DataTransfer",{"vendorId":"x"}]')
    sent = await pipe.wait_sent(2)
    assert [frame[:2] for frame in sent] == [[3, "r1"], [2, "id-1"]]


async def test_reply_gate_refuses_a_handler_awaiting_its_own_call(station):
    _, pipe = station
    await pipe.inbox.put('[2,"r1","GetLocalListVersion",{}]')
    [reply] = await pipe.wait_sent(1)
    assert reply[:3] == [4, "r1", "InternalError"]  # at once, not after a timeout
    await asyncio.sleep(0.05)
    assert len(pipe.sent) == 1  # and the CALL never went out


async def test_reply_gate_a_woken_call_waits_again_for_the_next_request():
    gate = ReplyGate()
    gate.close()
    waiter = asyncio.create_task(gate.passage("Heartbeat"))
    await asyncio.sleep(0)
    gate.open()
    gate.close()  # the next request was read before the woken CALL ran
    await asyncio.sleep(0.01)
    assert not waiter.done()
    gate.open()
    await asyncio.wait_for(waiter, 1)


async def test_reply_gate_raises_on_the_handlers_own_task():
    gate = ReplyGate()
    gate.close()
    with pytest.raises(HandlerAwaitsCall, match="StatusNotification"):
        await gate.passage("StatusNotification")
