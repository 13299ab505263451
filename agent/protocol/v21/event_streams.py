"""OCPP 2.1 periodic event streams (block N) over ``agent.core.device_model.event_streams``.

* OpenPeriodicEventStream (station -> CSMS): after a SetVariableMonitoring that gave a periodic
  monitor a stream, and at each registration for a stream not accepted yet. Accepted: the
  monitor's values go out as NotifyPeriodicEventStream SEND frames at the stream's rate instead of
  NotifyEvent; Rejected: the stream is dropped and the monitor reports by NotifyEvent.
* ClosePeriodicEventStream (station -> CSMS): when an opened stream's monitor is cleared, replaced
  without a stream or dropped by SetMonitoringBase (told at the next registration if offline).
* GetPeriodicEventStream: the open streams. AdjustPeriodicEventStream: a new rate for an open
  stream; Rejected for another id.

A SEND is never queued: values taken offline are lost (``Frames21.send_unanswered``).
"""

from __future__ import annotations

import asyncio
import logging

from ocpp.routing import after, on
from ocpp.v21 import call, call_result
from ocpp.v21.enums import Action

from agent.core.device_model.event_streams import StreamBatch
from agent.errors import CallAborted, CallErrorReceived, CallTimeout, ConnectionLost, InvalidResponse
from agent.runtime.clock import format_iso

log = logging.getLogger("agent.ocpp21")

NOTIFY_PERIODIC_EVENT_STREAM = "NotifyPeriodicEventStream"
#: What this mixin sends on its own (read by `ocpp-agent pics` through the adapter's ``sends``).
STREAM_SENDS = frozenset({"OpenPeriodicEventStream", "ClosePeriodicEventStream", NOTIFY_PERIODIC_EVENT_STREAM})
_LOST = (CallTimeout, CallAborted, ConnectionLost, CallErrorReceived, InvalidResponse)


def stream_data(stream) -> dict:
    """A stream as 2.1 ConstantStreamDataType (snake_case)."""
    return {"id": stream.id, "variable_monitoring_id": stream.monitor_id, "params": stream.params()}


def stream_message(batch: StreamBatch) -> dict:
    """A batch as the NotifyPeriodicEventStream payload (snake_case)."""
    return {"id": batch.stream_id, "pending": batch.pending, "basetime": format_iso(batch.basetime),
            "data": [{"t": t, "v": v[:2500]} for t, v in batch.data]}


class EventStreamHandlers21:
    """Mixed into the 2.1 adapter, before the monitoring handlers (``self.core.monitoring.streams``)."""

    def _streams(self):
        monitoring = self.core.monitoring if self.core is not None else None
        return monitoring.streams if monitoring is not None else None

    # ------------------------------------------------------------ connection

    async def on_accepted(self) -> None:
        """Registered: stream batches go through this connection; openings and closings due are told."""
        await super().on_accepted()
        streams = self._streams()
        if streams is not None:
            streams.attach(self._stream_batch)
            self.spawn(self._announce_streams(), name="event-streams")

    def on_disconnected(self) -> None:
        """Offline: what the streams hold is dropped, and their values too until the next registration."""
        streams = self._streams()
        if streams is not None:
            streams.detach(self._stream_batch)
        super().on_disconnected()

    def _stream_batch(self, batch: StreamBatch) -> None:
        """The core's sink: one SEND for one batch (lost, not queued, if the link drops meanwhile)."""
        self.spawn(self.send_unanswered(NOTIFY_PERIODIC_EVENT_STREAM, stream_message(batch)), name="stream-send")

    async def _announce_streams(self) -> None:
        """Open the streams the CSMS has not accepted yet, and tell it of the ones closed."""
        streams = self._streams()
        if streams is None:
            return
        if not hasattr(self, "_announcing"):
            self._announcing = asyncio.Lock()
        async with self._announcing:  # a registration and a SetVariableMonitoring may both announce
            await self._announce(streams)

    async def _announce(self, streams) -> None:
        for stream_id in streams.to_close:
            try:
                await self.call(call.ClosePeriodicEventStream(id=stream_id))
            except _LOST as exc:
                log.warning("ClosePeriodicEventStream %s not delivered: %s", stream_id, exc)
                return  # told at the next registration
            streams.closed(stream_id)
        for stream in streams.to_open:
            try:
                result = await self.call(call.OpenPeriodicEventStream(constant_stream_data=stream_data(stream)))
            except _LOST as exc:
                log.warning("OpenPeriodicEventStream %s not delivered: %s", stream.id, exc)
                return  # opened at the next registration
            accepted = result.status == "Accepted"
            if not accepted:
                log.warning("CSMS refused stream %s: %s", stream.id, result.status_info)
            streams.opened(stream.id, accepted=accepted)

    @after(Action.set_variable_monitoring)
    async def after_set_variable_monitoring_streams(self, **_):
        """Open the streams the answer set up (close those a replacement dropped)."""
        await self._announce_streams()

    @after(Action.clear_variable_monitoring)
    async def after_clear_variable_monitoring_streams(self, **_):
        """Close the streams of the monitors cleared."""
        await self._announce_streams()

    @after(Action.set_monitoring_base)
    async def after_set_monitoring_base_streams(self, **_):
        """Close the streams of the monitors the new base dropped."""
        await self._announce_streams()

    # ------------------------------------------------------------ CSMS requests

    @on(Action.get_periodic_event_stream)
    def on_get_periodic_event_stream(self, **_):
        """GetPeriodicEventStream: every open stream (none: the list is left out, as 2.1 wants one item)."""
        streams = self._streams()
        data = [stream_data(s) for s in streams.open_streams] if streams is not None else []
        return call_result.GetPeriodicEventStream(constant_stream_data=data or None)

    @on(Action.adjust_periodic_event_stream)
    def on_adjust_periodic_event_stream(self, id: int, params: dict, **_):  # noqa: A002 (OCPP's name)
        """AdjustPeriodicEventStream: the open stream's new rate, or Rejected for no such stream."""
        streams = self._streams()
        if streams is not None and streams.adjust(id, interval=params.get("interval", 0),
                                                  values=params.get("values", 0)):
            return call_result.AdjustPeriodicEventStream(status="Accepted")
        return call_result.AdjustPeriodicEventStream(status="Rejected", status_info={
            "reason_code": "UnknownId", "additional_info": f"no open stream {id}"})
