"""The one owner of a bus's meter reads: each meter polled on a timer, one read at a time.

Meters that share a bus (several Modbus meters on one RS-485 line) share one
``MeterPoller``; a meter alone on its bus (the mock's) gets its own. The
poller runs one task that sleeps on a timer until the next meter is due, so
an idle station costs one wake-up per meter and poll interval, and two reads
of one bus never overlap. A consumer that needs a reading taken *now* (the
energy register at a transaction boundary) asks the poller for one
(``poll_now``); it is served between the scheduled polls, still by the one
owner of the bus.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Protocol

from hal.errors import MeterReadError, MeterTimeout
from hal.events import MeterReading

log = logging.getLogger(__name__)


class PolledMeter(Protocol):
    """What the poller needs of a meter (``hal.roles.meter.EnergyMeter`` is one; it imports this module)."""

    evse_id: int
    poll_interval_s: float

    async def _poll_once(self) -> MeterReading:
        """One read, judged and published by the meter."""


def next_due(due: float, interval_s: float, now: float) -> float:
    """The next poll time on the grid ``due + k * interval_s`` after ``now``: a late poll does not bunch up."""
    due += interval_s
    if due <= now:
        due += (math.floor((now - due) / interval_s) + 1) * interval_s
    return due


class MeterPoller:
    """Polls its meters one at a time, each every ``poll_interval_s`` (its own), on timers.

    - ``add(meter)`` polls the meter at once and then on its interval's grid;
      a poll that runs late skips the missed slots (no burst of catch-up reads).
    - ``poll_now(meter)`` returns the outcome of a poll of ``meter`` that
      starts after the call; such demands go before scheduled polls.
    - ``remove(meter)`` waits for a poll of that meter under way to end; the
      task ends with the last meter.

    The meters publish and judge their own readings (``PolledMeter._poll_once``):
    the poller only decides when, so a bug here shows as a stale meter (fault
    ``meter-offline``), never as a made-up value.
    """

    def __init__(self, *, name: str = "meters") -> None:
        self.name = name
        self._due: dict[PolledMeter, float] = {}  # meter -> monotonic time of its next scheduled poll
        self._demands: dict[PolledMeter, list[asyncio.Future]] = {}
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Future | None = None
        self._current: PolledMeter | None = None
        self._current_done: asyncio.Event | None = None
        self.polls = 0

    @property
    def meters(self) -> tuple[PolledMeter, ...]:
        """The meters polled, in the order they were added."""
        return tuple(self._due)

    @property
    def running(self) -> bool:
        """True while the polling task is alive."""
        return self._task is not None and not self._task.done()

    def add(self, meter: PolledMeter) -> None:
        """Poll ``meter`` from now on (the first poll at once); must run on the event loop."""
        loop = asyncio.get_running_loop()
        self._due[meter] = time.monotonic()
        if not self.running:
            self._task = loop.create_task(self._run(), name=f"meter poller {self.name}")
            self._task.add_done_callback(self._task_done)
        self._wake_up()

    async def remove(self, meter: PolledMeter) -> None:
        """Stop polling ``meter``: waits for its poll under way; pending ``poll_now`` calls fail."""
        self._due.pop(meter, None)
        for waiter in self._demands.pop(meter, []):
            _settle(waiter, None, MeterReadError(f"{meter!r} is no longer polled"))
        if self._current is meter and self._current_done is not None:
            await self._current_done.wait()
        if not self._due and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def poll_now(self, meter: PolledMeter, *, timeout_s: float) -> MeterReading:
        """A reading of ``meter`` from a poll that starts after this call (MeterReadError if it fails).

        ``timeout_s`` bounds the wait, including a poll of another meter under way.
        """
        if meter not in self._due or not self.running:
            raise MeterReadError(f"{meter!r} is not being polled")
        waiter = asyncio.get_running_loop().create_future()
        self._demands.setdefault(meter, []).append(waiter)
        self._wake_up()
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter
        except TimeoutError as exc:
            raise MeterTimeout(f"no poll of {meter!r} within {timeout_s:g} s") from exc

    # -- the task ------------------------------------------------------------

    async def _run(self) -> None:
        while self._due:
            meter = self._next()
            if meter is None:
                await self._sleep_until(min(self._due.values()))
            else:
                await self._poll(meter)

    def _next(self) -> PolledMeter | None:
        """The meter to poll now: one a consumer waits for, else the most overdue; None if none is due."""
        for meter in self._demands:
            if meter in self._due:
                return meter
        meter = min(self._due, key=self._due.__getitem__)
        return meter if self._due[meter] <= time.monotonic() else None

    async def _poll(self, meter: PolledMeter) -> None:
        waiting = self._demands.pop(meter, [])
        started = time.monotonic()
        self._current, self._current_done = meter, asyncio.Event()
        reading, error = None, None
        try:
            reading = await meter._poll_once()
        except MeterReadError as exc:
            error = exc  # the meter has counted and logged it
        except Exception as exc:  # a driver bug must not end polling of the whole bus
            log.exception("poll of %r failed", meter)
            error = MeterReadError(f"poll of EVSE {meter.evse_id} meter failed: {exc!r}")
        except BaseException:  # cancelled (the last meter left): nobody may be left waiting
            for waiter in waiting:
                _settle(waiter, None, MeterReadError(f"meter poller {self.name} stopped"))
            raise
        finally:
            self._current_done.set()
            self._current = None
        self.polls += 1
        due = self._due.get(meter)
        if due is not None and due <= started:  # a scheduled poll moves the grid; a demanded one does not
            self._due[meter] = next_due(due, meter.poll_interval_s, time.monotonic())
        for waiter in waiting:
            _settle(waiter, reading, error)

    async def _sleep_until(self, deadline: float) -> None:
        # A future and a timer handle: cheaper than asyncio.wait_for, and woken early by poll_now/add.
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        handle = loop.call_later(max(0.0, deadline - time.monotonic()), _settle, self._wake, None, None)
        try:
            await self._wake
        finally:
            handle.cancel()
            self._wake = None

    def _wake_up(self) -> None:
        if self._wake is not None:
            _settle(self._wake, None, None)

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        # Unreachable unless the poller has a bug: the meters go stale and raise meter-offline.
        log.error("meter poller %s stopped", self.name, exc_info=task.exception())
        for waiters in self._demands.values():
            for waiter in waiters:
                _settle(waiter, None, MeterReadError(f"meter poller {self.name} stopped"))
        self._demands.clear()

    def __repr__(self) -> str:
        return (f"<MeterPoller {self.name} meters={len(self._due)} polls={self.polls}"
                f" {'running' if self.running else 'stopped'}>")


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    """Resolve ``future`` unless it is already done (its waiter may have given up)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
