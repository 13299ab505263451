"""The registration life cycle every OCPP version follows on a connection.

BootNotification until the CSMS accepts it (honouring its Pending and Rejected
intervals, backing off on failures), then Heartbeat at the interval it gave; the
station clock follows the CSMS's currentTime from both answers. A connection to
the CSMS endpoint that already accepted this process's boot resumes on it instead
(see ``agent.protocol.common.boot``): no BootNotification after a mere reconnect.
It is a mixin of :class:`agent.protocol.common.adapter.AdapterBase`, kept apart so
that the RPC layer and the life cycle can each be read on their own.
"""

from __future__ import annotations

import asyncio
import logging

from agent.errors import CallErrorReceived, CallTimeout, InvalidResponse, StoreError
from agent.protocol.common.boot import NEXT_REASON_KEY, POWER_UP, TRIGGERED
from agent.runtime.backoff import backoff_delays
from agent.runtime.liveness import TICK_S

log = logging.getLogger("agent.ocpp")


class Registration:
    """BootNotification, then Heartbeat; relies on the adapter's ``call``, ``spawn``, ``settings`` and ``clock``."""

    async def serve(self) -> None:
        """Serve the connection until it ends: read frames, boot, then heartbeat."""
        reader = asyncio.ensure_future(self.start())
        lifecycle = self.spawn(self._registered_lifecycle(), name="registration")
        try:
            await asyncio.wait({reader, lifecycle}, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self.connection_lost()
            for task in (reader, lifecycle):
                task.cancel()
            await asyncio.gather(reader, lifecycle, return_exceptions=True)

    async def _registered_lifecycle(self) -> None:
        record = self.boot_record
        if record is not None and record.may_resume(self.endpoint_url()):
            log.info("reconnected to the CSMS that accepted this boot: resuming without a BootNotification")
            self.resumed = True
            self.registration = "Accepted"
            self.accepted.set()
        else:
            await self.boot()
        await self.on_accepted()
        await self.heartbeat_loop()

    async def boot(self) -> None:
        """Send BootNotification until Accepted, honouring Pending and Rejected intervals; a triggered
        BootNotification (TriggerMessage while not accepted) cuts the wait short."""
        retry = None
        if self.boot_record is not None:
            self.boot_record.booting()
        while True:
            request = self.boot_notification_request()  # reads the trigger for its reason
            self._boot_trigger.clear()
            try:
                response = await self.call(request)
            except (CallTimeout, CallErrorReceived, InvalidResponse) as exc:
                retry = retry or self._retry_delays()
                delay = next(retry)
                log.warning("BootNotification failed (%s); retrying in %.0f s", exc, delay)
                await self.sleep(delay, wake=self._boot_trigger)
                continue
            self._clock_synced(response.current_time)
            self.registration = str(response.status)
            if self.registration == "Accepted":
                self._adopt_heartbeat_interval(response.interval)
                log.info("registered with the CSMS (heartbeat every %d s)", self.settings["heartbeat_interval_s"])
                self._boot_accepted()
                self.accepted.set()
                return
            delay = response.interval if response.interval > 0 else self.settings["heartbeat_interval_s"]
            log.warning("BootNotification %s; trying again in %d s", self.registration, delay)
            await self.sleep(delay, wake=self._boot_trigger)

    def trigger_boot(self) -> None:
        """TriggerMessage(BootNotification) before the registration was accepted: the next BootNotification
        goes now, with the reason Triggered."""
        self._boot_trigger.set()

    def boot_reason(self) -> str:
        """Why the BootNotification being built is sent (2.0.1 says it): Triggered by the CSMS, else why
        this process started."""
        if self._boot_trigger.is_set():
            return TRIGGERED
        if self.boot_record is not None:
            return self.boot_record.reason_now()
        return (self._stored(NEXT_REASON_KEY) if self.core is not None else None) or POWER_UP

    def set_next_boot_reason(self, reason: str) -> None:
        """The station is about to restart because of ``reason`` (a CSMS Reset): the next start says so."""
        if self.boot_record is not None:
            self.boot_record.set_next_reason(reason)
        elif self.core is not None:
            self.core.store.put(NEXT_REASON_KEY, reason)

    def endpoint_url(self) -> str | None:
        """The CSMS endpoint of this connection (None for a connection that does not say)."""
        return getattr(self._connection, "url", None)

    def _boot_accepted(self) -> None:
        if self.boot_record is not None:
            self.boot_record.accepted(self.endpoint_url())
        elif self.core is not None:
            self.core.store.delete(NEXT_REASON_KEY)

    def _stored(self, key: str):
        try:
            return self.core.store.get(key)
        except StoreError:
            return None

    def _clock_synced(self, current_time: str) -> None:
        """Adopt the CSMS's time; a large jump is a security event."""
        from agent.core.management.security_events import CLOCK_JUMP_S, SETTING_SYSTEM_TIME, record_security_event

        delta = self.clock.sync(current_time)
        if abs(delta) > CLOCK_JUMP_S and self.core is not None:
            record_security_event(self.core.store, SETTING_SYSTEM_TIME, timestamp=self.clock.time(),
                                  tech_info=f"clock corrected by {delta:+.0f} s from the CSMS")
            self.outbox_changed()  # a Heartbeat's correction is sent now, not with the next transaction record

    def _retry_delays(self):
        return backoff_delays(
            wait_minimum_s=max(1, self.settings["retry_backoff_wait_minimum_s"]),
            random_range_s=self.settings["retry_backoff_random_range_s"],
            repeat_times=self.settings["retry_backoff_repeat_times"],
        )

    def _adopt_heartbeat_interval(self, interval: int) -> None:
        if interval > 0 and interval != self.settings["heartbeat_interval_s"]:
            self.settings.set("heartbeat_interval_s", interval)

    async def heartbeat_loop(self) -> None:
        """Send Heartbeat at the current interval; a failed one is logged, not fatal."""
        while True:
            await self.sleep(self.settings["heartbeat_interval_s"])
            response = await self._send_quietly(self.heartbeat_request())
            if response is not None:
                self._clock_synced(response.current_time)

    async def sleep(self, seconds: float, *, wake: asyncio.Event | None = None) -> None:
        """Sleep while ticking the liveness ticker, so the watchdog sees a healthy idle loop; return early
        once ``wake`` is set."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while wake is None or not wake.is_set():
            if self._ticker is not None:
                self._ticker.tick()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if wake is None:
                await asyncio.sleep(min(remaining, TICK_S))
                continue
            try:
                await asyncio.wait_for(wake.wait(), min(remaining, TICK_S))
            except asyncio.TimeoutError:
                pass

    def boot_notification_request(self):
        """The version's BootNotification request (its identity fields are worded differently)."""
        raise NotImplementedError

    def heartbeat_request(self):
        """A Heartbeat: an empty request in every version, built from the adapter's own message classes."""
        return self._call.Heartbeat()

    async def _trigger_Heartbeat(self, target: int | None) -> None:  # noqa: N802 (message name)
        """Triggered by the CSMS (TriggerMessage in any version): one Heartbeat, its loss not fatal."""
        await self._send_quietly(self.heartbeat_request())
