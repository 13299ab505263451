"""The energy meter role: checked readings, polled live and published, never a made-up one."""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time
from collections.abc import Callable

from hal.errors import EnergyWentBackwards, MeterReadError, MeterStale, MeterTimeout
from hal.events import Emit, MeterReading
from hal.faults import FaultTracker
from hal.roles._device import Device, check_positive
from hal.roles.meter_polling import MeterPoller

log = logging.getLogger(__name__)

METER_OFFLINE = "meter-offline"

# Plausibility bounds that catch a register map with the wrong scale
# (mV read as V, W as kW), not limits of any real installation.
MAX_VOLTAGE_V = 1000.0
MAX_CURRENT_A = 1000.0
MAX_POWER_W = 1_000_000.0

ReadingListener = Callable[[int, "MeterReading | None"], None]


class EnergyMeter(Device, abc.ABC):
    """Energy meter of one EVSE.

    Contract of ``read()`` (a template method; drivers implement ``_read()``):

    - It returns a checked ``MeterReading`` or raises ``MeterReadError``;
      it never returns zeros or a stale value on failure.
    - ``_read()`` gets ``read_timeout_s``; running over raises
      ``MeterTimeout``. Other driver exceptions are wrapped in
      ``MeterReadError`` with the cause kept (``raise ... from``).
    - Checks: every number finite, as many voltages as currents (1 to 3
      phases), values within plausibility bounds (a wrong unit scale),
      energy >= 0, not older than ``max_age_s`` if given, and energy not
      below the last accepted reading (``EnergyWentBackwards``).
    - After ``offline_after`` consecutive failed reads, fault
      ``meter-offline`` is raised (an event); the next good read clears it.

    Live supervision, from ``start()`` to ``stop()``: the meter is polled
    every ``poll_interval_s`` by the ``MeterPoller`` that owns its bus
    (``poller``; meters on one line share one, else the meter gets its own),
    whether or not anyone samples it. Every good poll is published:
    ``latest`` (with ``latest_at``, its monotonic time) and the listeners
    (``add_listener``). A reading older than ``stale_after`` poll intervals
    is stale: ``latest`` is None, ``current()`` raises ``MeterStale``, the
    listeners hear None, and fault ``meter-offline`` is raised by a timer
    at that moment, however long a hung read takes; the next good poll
    clears it. Consumers (sampling, monitoring, display, status) use
    ``latest`` or ``current()`` and never touch the bus; ``read()`` while
    polled asks the poller for a poll now (a transaction's energy register
    at its start and stop), so the bus keeps one owner.
    """

    def __init__(
        self,
        evse_id: int,
        *,
        emit: Emit,
        offline_after: int = 3,
        read_timeout_s: float = 2.0,
        max_age_s: float | None = None,
        poll_interval_s: float = 1.0,
        stale_after: int = 3,
        poller: MeterPoller | None = None,
    ) -> None:
        for name, value in (("offline_after", offline_after), ("stale_after", stale_after)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, not {value!r}")
        self.evse_id = evse_id
        self.offline_after = offline_after
        self.read_timeout_s = check_positive("read_timeout_s", read_timeout_s)
        self.max_age_s = None if max_age_s is None else check_positive("max_age_s", max_age_s)
        self.poll_interval_s = check_positive("poll_interval_s", poll_interval_s)
        self.stale_after = stale_after
        self._faults = FaultTracker(evse_id, emit=emit)
        self._last: MeterReading | None = None
        self._last_at: float | None = None  # monotonic time of the last good reading
        self._failures = 0
        # Reads are serialised so the backwards check compares in order.
        self._mutex = asyncio.Lock()
        self._poller = poller
        self._polling = False
        self._fresh_since = 0.0  # monotonic: the last good reading, or the start of polling
        self._stale_timer: asyncio.TimerHandle | None = None
        self._stale_told = False
        self._listeners: list[ReadingListener] = []
        self.last_poll_s: float | None = None  # how long the last read took (diagnostics, benchmarks)

    @property
    def last_reading(self) -> MeterReading | None:
        """The last accepted reading, or None before the first one."""
        return self._last

    @property
    def stale_after_s(self) -> float:
        """Age beyond which a reading is stale: ``stale_after`` poll intervals."""
        return self.stale_after * self.poll_interval_s

    @property
    def latest(self) -> MeterReading | None:
        """The latest good reading, or None if there is none younger than ``stale_after_s``."""
        if self._last_at is None or time.monotonic() - self._last_at > self.stale_after_s:
            return None
        return self._last

    @property
    def latest_at(self) -> float | None:
        """Monotonic time (``time.monotonic()``) of the latest good reading, or None before the first."""
        return self._last_at

    @property
    def polling(self) -> bool:
        """True while the meter is polled (between ``start()`` and ``stop()``)."""
        return self._polling

    @property
    def poller(self) -> MeterPoller | None:
        """The poller that owns this meter's bus (set by ``start()`` if none was given)."""
        return self._poller

    def add_listener(self, listener: ReadingListener) -> None:
        """Call ``listener(evse_id, reading)`` after every good read, and ``(evse_id, None)`` when it goes stale.

        Listeners run on the event loop and must be quick (evaluate a
        monitor, update a display); an exception is logged, not raised.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: ReadingListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    @property
    def consecutive_failures(self) -> int:
        """Failed reads since the last good one."""
        return self._failures

    @property
    def offline(self) -> bool:
        """True while fault ``meter-offline`` is raised."""
        return self._faults.is_active(METER_OFFLINE)

    @property
    def faults(self) -> frozenset[str]:
        """Fault codes this meter has raised and not cleared."""
        return self._faults.active

    async def start(self) -> None:
        """Open the device, then poll it every ``poll_interval_s`` until ``stop()``."""
        await super().start()
        if self._polling:
            return
        if self._poller is None:
            self._poller = MeterPoller(name=f"EVSE {self.evse_id}")
        self._polling = True
        self._fresh_since = time.monotonic()  # a meter that never answers goes stale from here
        self._stale_told = False
        self._arm_stale_timer()
        self._poller.add(self)

    async def stop(self) -> None:
        """Stop polling (a poll under way ends first), then release the device."""
        if self._polling:
            self._polling = False
            self._cancel_stale_timer()
            await self._poller.remove(self)
        await super().stop()

    async def read(self) -> MeterReading:
        """Read the meter now: a checked reading, or MeterReadError (MeterTimeout, EnergyWentBackwards).

        While polled, the read is a poll the poller runs at once, so the bus
        keeps one owner; otherwise (bench work, tests) it reads directly.
        """
        if self._polling:
            return await self._poller.poll_now(self, timeout_s=2 * self.read_timeout_s)
        return await self._poll_once()

    async def current(self, *, max_age_s: float | None = None) -> MeterReading:
        """The reading consumers use: the latest published one, not a read of their own.

        Raises MeterStale when the latest reading is stale. Before the first
        poll has answered, or when the latest reading is older than
        ``max_age_s`` (a consumer sampling faster than the meter is polled),
        it waits for a poll of its own, run by the poller. A meter that is
        not polled (bench work, tests) is read directly.
        """
        if not self._polling:
            return await self.read()
        latest = self.latest
        age = None if self._last_at is None else time.monotonic() - self._last_at
        if latest is not None and (max_age_s is None or age <= max_age_s):
            return latest
        if (self._last_at is None and self._failures == 0) or max_age_s is not None:
            return await self.read()
        what = "no reading yet" if age is None else f"no good reading for {age:.1f} s"
        raise MeterStale(f"EVSE {self.evse_id} meter: {what}")

    async def _poll_once(self) -> MeterReading:
        """One read of the meter, judged and published (the poller's and ``read()``'s work)."""
        async with self._mutex:
            started = time.perf_counter()
            try:
                reading = await self._fetch()
                self._check(reading)
            except MeterReadError as exc:
                self._failed(exc)
                raise
            finally:
                self.last_poll_s = time.perf_counter() - started
            self._succeeded(reading)
            return reading

    async def _fetch(self) -> MeterReading:
        try:
            async with asyncio.timeout(self.read_timeout_s):
                return await self._read()
        except MeterReadError:
            raise
        except TimeoutError as exc:
            raise MeterTimeout(
                f"EVSE {self.evse_id} meter did not answer within {self.read_timeout_s:g} s") from exc
        except Exception as exc:
            raise MeterReadError(f"EVSE {self.evse_id} meter read failed: {exc!r}") from exc

    def _check(self, reading: MeterReading) -> None:
        if not isinstance(reading, MeterReading):
            raise MeterReadError(f"driver returned {type(reading).__name__}, not MeterReading")
        check_reading_sane(reading)
        if self.max_age_s is not None and abs(time.time() - reading.timestamp) > self.max_age_s:
            raise MeterReadError(f"reading is stale: timestamp {reading.timestamp:.3f} is more "
                                 f"than {self.max_age_s:g} s from now")
        if self._last is not None and reading.energy_import_Wh < self._last.energy_import_Wh:
            raise EnergyWentBackwards(
                f"EVSE {self.evse_id} energy went backwards: {reading.energy_import_Wh} Wh "
                f"after {self._last.energy_import_Wh} Wh")

    def _failed(self, exc: MeterReadError) -> None:
        self._failures += 1
        # Polled every second, a dead meter would fill the journal: the fault says the rest.
        level = logging.WARNING if self._failures <= self.offline_after else logging.DEBUG
        log.log(level, "EVSE %s meter read failed (%d in a row): %s", self.evse_id, self._failures, exc)
        if self._failures >= self.offline_after:
            self._faults.raise_fault(METER_OFFLINE, info=str(exc))

    def _succeeded(self, reading: MeterReading) -> None:
        self._failures = 0
        self._last = reading
        self._last_at = self._fresh_since = time.monotonic()
        self._stale_told = False
        self._faults.clear_fault(METER_OFFLINE)
        if self._polling:
            # Moved on every good poll: a cancelled timer never wakes the loop, so a healthy
            # meter costs no wake-up beyond its polls.
            self._cancel_stale_timer()
            self._arm_stale_timer()
        self._tell(reading)

    # -- staleness -------------------------------------------------------------

    def _arm_stale_timer(self) -> None:
        if self._stale_timer is None:
            delay = self._fresh_since + self.stale_after_s - time.monotonic()
            self._stale_timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._stale_check)

    def _cancel_stale_timer(self) -> None:
        if self._stale_timer is not None:
            self._stale_timer.cancel()
            self._stale_timer = None

    def _stale_check(self) -> None:
        self._stale_timer = None
        if not self._polling:
            return
        age = time.monotonic() - self._fresh_since
        if age < self.stale_after_s:
            self._arm_stale_timer()  # a good poll came since the timer was set
            return
        # The next good poll re-arms the timer; until then the meter stays offline.
        what = "no reading" if self._last_at is None else "no good reading"
        self._faults.raise_fault(METER_OFFLINE, info=f"{what} for {age:.1f} s "
                                 f"({self.stale_after} poll intervals of {self.poll_interval_s:g} s)")
        if not self._stale_told:
            self._stale_told = True
            self._tell(None)

    def _tell(self, reading: MeterReading | None) -> None:
        for listener in list(self._listeners):
            try:
                listener(self.evse_id, reading)
            except Exception:  # a monitoring bug must not cost the meter its polling
                log.exception("meter reading listener %r failed on EVSE %s", listener, self.evse_id)

    @abc.abstractmethod
    async def _read(self) -> MeterReading:
        """Driver hook: one bulk read of the meter, decoded into a MeterReading."""

    def __repr__(self) -> str:
        energy = "none" if self._last is None else f"{self._last.energy_import_Wh:.1f}Wh"
        return (f"<{type(self).__name__} evse={self.evse_id} last={energy}"
                f" failures={self._failures} {'offline' if self.offline else 'online'}>")


def check_reading_sane(reading: MeterReading) -> None:
    """Raise MeterReadError unless ``reading`` has finite, plausibly scaled values."""
    phases = len(reading.voltage_V)
    if not 1 <= phases <= 3 or len(reading.current_A) != phases:
        raise MeterReadError(f"expected 1 to 3 phases with one voltage and one current each, got "
                             f"{len(reading.voltage_V)} voltages and {len(reading.current_A)} currents")
    numbers = (reading.energy_import_Wh, reading.power_W, reading.timestamp,
               *reading.voltage_V, *reading.current_A)
    if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in numbers):
        raise MeterReadError(f"reading has a non-finite or non-numeric value: {reading!r}")
    if reading.energy_import_Wh < 0:
        raise MeterReadError(f"negative energy register: {reading.energy_import_Wh} Wh")
    if any(not 0 <= v <= MAX_VOLTAGE_V for v in reading.voltage_V):
        raise MeterReadError(f"implausible voltage {reading.voltage_V} V (wrong scale?)")
    if any(abs(i) > MAX_CURRENT_A for i in reading.current_A):
        raise MeterReadError(f"implausible current {reading.current_A} A (wrong scale?)")
    if abs(reading.power_W) > MAX_POWER_W:
        raise MeterReadError(f"implausible power {reading.power_W} W (wrong scale?)")
