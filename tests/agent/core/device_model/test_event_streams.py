"""The stream bookkeeping of ``agent.core.device_model.event_streams``: batching by values and by interval,
nothing before the CSMS accepted, nothing kept offline, closings remembered across a restart."""

from __future__ import annotations

import asyncio

from agent.core.device_model.event_streams import EventStreams


class Store(dict):
    """The state store's get/put over a dict."""

    def put(self, key, value):
        self[key] = value


class Clock:
    def time(self) -> float:
        return 1000.0


def opened(store, monitor_id=7, **rate) -> tuple[EventStreams, list]:
    streams = EventStreams(store, clock=Clock())
    streams.request(monitor_id, **rate)
    streams.opened(monitor_id, accepted=True)
    batches = []
    streams.attach(batches.append)
    return streams, batches


async def test_streams_batch_by_values_and_by_interval():
    streams, batches = opened(Store(), values=2)
    assert streams.take(7, 10.0, "1") and batches == []
    assert streams.take(7, 11.0, "2")
    assert [(b.stream_id, b.basetime, b.data, b.pending) for b in batches] == [(7, 10.0, [(0.0, "1"), (1.0, "2")], 0)]
    assert not streams.take(8, 12.0, "x")  # no stream: the monitor reports events

    streams, batches = opened(Store(), interval=1)
    streams.take(7, 20.0, "a")
    streams.take(7, 20.5, "b")
    assert batches == []
    await asyncio.sleep(1.2)
    assert [b.data for b in batches] == [[(0.0, "a"), (0.5, "b")]]
    assert streams.adjust(7, values=1) and not streams.adjust(99, values=1)
    streams.take(7, 30.0, "c")
    assert batches[-1].data == [(0.0, "c")]


async def test_streams_carry_nothing_before_accepted_and_keep_nothing_offline():
    store = Store()
    streams = EventStreams(store, clock=Clock())
    streams.request(3, values=1)
    assert [s.id for s in streams.to_open] == [3] and not streams.take(3, 1.0, "v")  # not open: events go on
    streams.opened(3, accepted=False)
    assert streams.get(3) is None  # refused: dropped

    streams, batches = opened(store, 4, interval=5)
    streams.take(4, 1.0, "waiting")
    streams.detach(batches.append)  # the link drops: what waits is lost
    assert streams.take(4, 2.0, "offline")  # carried by the stream, and dropped
    streams.attach(batches.append)
    streams.adjust(4, values=1)
    streams.take(4, 3.0, "online")
    assert [b.data for b in batches] == [[(0.0, "online")]]


def test_streams_closings_and_rates_survive_a_restart():
    store = Store()
    streams, _ = opened(store, 5, interval=2, values=3)
    streams.request(6, values=1)
    streams.remove(5)
    streams.retain([9])  # 6 was never opened: nothing to tell the CSMS
    again = EventStreams(store, clock=Clock())
    assert again.to_close == [5] and again.get(6) is None
    again.closed(5)
    assert EventStreams(store, clock=Clock()).to_close == []
    opened(store, 8, interval=2, values=3)
    assert EventStreams(store, clock=Clock()).open_streams[0].params() == {"interval": 2, "values": 3}
