"""Periodic event streams (OCPP 2.1 block N), version-neutral: the bookkeeping of the streams that
periodic monitors report through instead of one event per value.

A Periodic or PeriodicClockAligned monitor the CSMS marks for streaming gets a stream with the
monitor's id. The station announces it (the adapter sends the open request); once the CSMS
accepted it, each value the monitor takes goes into the stream instead of an event, and the stream
hands its values to the attached sink in batches: when ``values`` values are waiting, or
``interval`` seconds after the first of them, whichever comes first (0 means "not this rule"; with
both 0 every value goes alone). Values taken while no sink is attached, and a batch waiting when
the connection ends, are dropped: a stream is live data, never queued.

A stream whose monitor is cleared (or replaced by one without a stream) is closed: the CSMS is told
when it can hear it (``to_close``). The streams, whether each was opened and which closings are
due persist in the state store, so a restart keeps streaming where the CSMS expects it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.errors import StoreError

STATE_KEY = "monitoring:streams"

log = logging.getLogger(__name__)


@dataclass
class Stream:
    """One stream: the monitor it reports (its id is the stream's), its rate, and whether it is open."""

    id: int
    interval: int = 0  # seconds from the first waiting value to its batch; 0: only ``values`` decides
    values: int = 0  # values per batch; 0: only ``interval`` decides
    opened: bool = False  # the CSMS accepted its opening
    waiting: list[tuple[float, str]] = field(default_factory=list, repr=False)

    @property
    def monitor_id(self) -> int:
        """The id of the monitor whose values this stream carries."""
        return self.id

    def params(self) -> dict:
        """The rate as 2.1 PeriodicEventStreamParamsType (snake_case)."""
        return {"interval": self.interval, "values": self.values}


@dataclass(frozen=True)
class StreamBatch:
    """Values of one stream to send together: ``data`` as (seconds after ``basetime``, value)."""

    stream_id: int
    basetime: float
    data: list[tuple[float, str]]
    pending: int = 0  # values still waiting after this batch


_Sink = Callable[[StreamBatch], None]


class EventStreams:
    """The station's periodic event streams; ``take`` is called with every value a periodic monitor takes."""

    def __init__(self, store, *, clock) -> None:
        self._store = store
        self._clock = clock
        state = store.get(STATE_KEY) or {}
        self._streams = {int(s["id"]): Stream(int(s["id"]), int(s["interval"]), int(s["values"]), bool(s["opened"]))
                         for s in state.get("streams", [])}
        self._closing = [int(i) for i in state.get("closing", [])]
        self._sink: _Sink | None = None
        self._timers: dict[int, asyncio.TimerHandle] = {}

    def __repr__(self) -> str:
        return f"<EventStreams {sorted(self._streams)} closing={self._closing}>"

    # ------------------------------------------------------------ the streams

    def get(self, stream_id: int) -> Stream | None:
        """The stream of this id, or None."""
        return self._streams.get(stream_id)

    @property
    def open_streams(self) -> list[Stream]:
        """The streams the CSMS accepted, by id."""
        return [s for _, s in sorted(self._streams.items()) if s.opened]

    @property
    def to_open(self) -> list[Stream]:
        """Streams set up but not yet accepted by the CSMS: their opening is due."""
        return [s for _, s in sorted(self._streams.items()) if not s.opened]

    @property
    def to_close(self) -> list[int]:
        """Ids of closed streams the CSMS accepted once and has not heard closed yet."""
        return list(self._closing)

    def request(self, monitor_id: int, *, interval: int = 0, values: int = 0) -> Stream:
        """A stream for this monitor with this rate (a new one to open, or the existing one re-rated)."""
        stream = self._streams.get(monitor_id)
        if stream is None:
            stream = self._streams[monitor_id] = Stream(monitor_id)
            if monitor_id in self._closing:
                self._closing.remove(monitor_id)  # reopened before its closing went out
        stream.interval, stream.values = max(0, int(interval)), max(0, int(values))
        self._persist()
        return stream

    def opened(self, stream_id: int, *, accepted: bool) -> None:
        """The CSMS's answer to the opening: an accepted stream carries the values from now on; a refused
        one is dropped (its monitor reports events again)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if accepted:
            stream.opened = True
        else:
            del self._streams[stream_id]
        self._persist()

    def adjust(self, stream_id: int, *, interval: int = 0, values: int = 0) -> bool:
        """Change an open stream's rate (what waits goes out by the new rule); False for no such stream."""
        stream = self._streams.get(stream_id)
        if stream is None or not stream.opened:
            return False
        stream.interval, stream.values = max(0, int(interval)), max(0, int(values))
        self._persist()
        self._cancel(stream_id)
        if stream.waiting:
            self._schedule(stream)
        return True

    def remove(self, stream_id: int) -> bool:
        """Close a stream (its monitor is gone); True if it had one. An opened one is due to be told."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return False
        self._cancel(stream_id)
        if stream.opened:
            self._closing.append(stream_id)
        self._persist()
        return True

    def retain(self, monitor_ids: Iterable[int]) -> None:
        """Close the streams whose monitor is not among these (the active monitors)."""
        keep = set(monitor_ids)
        for stream_id in [i for i in self._streams if i not in keep]:
            self.remove(stream_id)

    def closed(self, stream_id: int) -> None:
        """The CSMS heard the closing of this stream."""
        if stream_id in self._closing:
            self._closing.remove(stream_id)
            self._persist()

    # ------------------------------------------------------------ values

    def attach(self, sink: _Sink) -> None:
        """Hand batches to ``sink`` from now on."""
        self._sink = sink

    def detach(self, sink: _Sink | None = None) -> None:
        """Stop handing batches (to ``sink``, if it is still the one attached; any, for None): what waits
        is dropped, never kept for the next connection."""
        if sink is not None and self._sink != sink:
            return
        self._sink = None
        for stream in self._streams.values():
            stream.waiting.clear()
        for stream_id in list(self._timers):
            self._cancel(stream_id)

    def take(self, monitor_id: int, timestamp: float, value: str) -> bool:
        """A value of a periodic monitor: True if an open stream carries it (then it is no event), even
        when it is dropped because nobody listens; False for a monitor without an open stream."""
        stream = self._streams.get(monitor_id)
        if stream is None or not stream.opened:
            return False
        if self._sink is None:
            return True  # offline: a stream's value is lost, not queued
        stream.waiting.append((timestamp, value))
        if (stream.values and len(stream.waiting) >= stream.values) or not (stream.interval or stream.values):
            self._flush(stream.id)
        elif stream.id not in self._timers:
            self._schedule(stream)
        return True

    def _schedule(self, stream: Stream) -> None:
        if stream.values and len(stream.waiting) >= stream.values:
            self._flush(stream.id)
        elif stream.interval:
            loop = asyncio.get_running_loop()
            self._timers[stream.id] = loop.call_later(stream.interval, self._flush, stream.id)

    def _cancel(self, stream_id: int) -> None:
        timer = self._timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()

    def _flush(self, stream_id: int) -> None:
        self._cancel(stream_id)
        stream = self._streams.get(stream_id)
        if stream is None or not stream.waiting or self._sink is None:
            return
        size = stream.values or len(stream.waiting)
        batch, stream.waiting = stream.waiting[:size], stream.waiting[size:]
        basetime = batch[0][0]
        out = StreamBatch(stream_id, basetime, [(round(t - basetime, 3), v) for t, v in batch],
                          pending=len(stream.waiting))
        try:
            self._sink(out)
        except Exception:  # a sending bug must not stop the monitor that took the value
            log.exception("stream %s: batch could not be handed over", stream_id)
        if stream.waiting:
            self._schedule(stream)

    # ------------------------------------------------------------ persistence

    def _persist(self) -> None:
        try:
            self._store.put(STATE_KEY, {
                "streams": [{"id": s.id, "interval": s.interval, "values": s.values, "opened": s.opened}
                            for s in self._streams.values()],
                "closing": list(self._closing)})
        except StoreError as exc:
            # The streams go on in memory; after a restart the CSMS may have to set them again.
            log.warning("event streams not saved: %s", exc)
