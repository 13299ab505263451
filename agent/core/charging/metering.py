"""Meter values: turning meter readings into OCPP samples, and scheduling them.

``sample_reading`` is a pure function from one ``MeterReading`` to one
``MeterSample`` holding the requested measurands. ``MeterSampler`` decides when
to sample: periodically during a transaction (from the moment it starts) and at
clock-aligned instants for every EVSE. It sleeps until the next due time and
runs no task at all while there is nothing to sample.

The meters are polled live by the hardware layer (``EnergyMeter.poll_interval_s``);
a sample takes the reading the meter last published (``EnergyMeter.current()``)
and never reads the bus itself, and a stale reading is no sample at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from agent.core.charging.model import MeterSample, Sample
from hal.errors import MeterReadError
from hal.events import MeterReading
from hal.roles.meter import EnergyMeter

log = logging.getLogger(__name__)

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
VOLTAGE = "Voltage"
CURRENT_IMPORT = "Current.Import"
CURRENT_OFFERED = "Current.Offered"

SUPPORTED_MEASURANDS: tuple[str, ...] = (ENERGY, POWER, VOLTAGE, CURRENT_IMPORT, CURRENT_OFFERED)

PERIODIC = "Sample.Periodic"
CLOCK = "Sample.Clock"

# OCPP names phase-to-neutral voltages "L1-N", but phase currents just "L1".
VOLTAGE_PHASES = ("L1-N", "L2-N", "L3-N")
CURRENT_PHASES = ("L1", "L2", "L3")

SAMPLE_INTERVAL = "meter_value_sample_interval_s"
ALIGNED_INTERVAL = "clock_aligned_data_interval_s"
SAMPLED_DATA = "meter_values_sampled_data"
ALIGNED_DATA = "meter_values_aligned_data"
# What StopTransaction's transactionData wants at the same moments; sampled in the same read.
STOP_SAMPLED_DATA = "stop_txn_sampled_data"
STOP_ALIGNED_DATA = "stop_txn_aligned_data"
# How often the stop data is sampled (2.0.1 TxEndedInterval; under 1.6 it follows SAMPLE_INTERVAL).
ENDED_INTERVAL = "tx_ended_interval_s"
# What a periodic sample serves when the two intervals differ (the sink's ``only``): the transaction's
# meter values (SAMPLED_DATA), or its stop record's transactionData (STOP_SAMPLED_DATA). Equal intervals
# share one stream, one read for both, and the sink is called without ``only``.
FOR_UPDATES = "updates"
FOR_END = "end"

# The corrected clock may jump when the CSMS corrects it, and Clock has no
# change notification, so a long aligned sleep is cut into slices of at most
# this length to notice a jump. One wake-up a minute costs nothing measurable.
CLOCK_RECHECK_S = 60.0

# sink(evse_id, sample, transaction_ref), with ``only=FOR_UPDATES|FOR_END`` for a sample that serves one use.
Sink = Callable[..., None]
_Value = tuple[float, str, "str | None"]  # value, unit, phase


def _energy(reading: MeterReading, offered_A: float | None) -> tuple[_Value, ...]:
    return ((_round(reading.energy_import_Wh, 1), "Wh", None),)


def _power(reading: MeterReading, offered_A: float | None) -> tuple[_Value, ...]:
    return ((_round(reading.power_W, 1), "W", None),)


def _voltage(reading: MeterReading, offered_A: float | None) -> tuple[_Value, ...]:
    return tuple((_round(v, 2), "V", phase) for v, phase in zip(reading.voltage_V, VOLTAGE_PHASES))


def _current(reading: MeterReading, offered_A: float | None) -> tuple[_Value, ...]:
    return tuple((_round(a, 2), "A", phase) for a, phase in zip(reading.current_A, CURRENT_PHASES))


def _offered(reading: MeterReading, offered_A: float | None) -> tuple[_Value, ...]:
    # Without a known offer there is nothing honest to report.
    return () if offered_A is None else ((_round(offered_A, 2), "A", None),)


_EXTRACTORS: dict[str, Callable[[MeterReading, float | None], tuple[_Value, ...]]] = {
    ENERGY: _energy, POWER: _power, VOLTAGE: _voltage, CURRENT_IMPORT: _current,
    CURRENT_OFFERED: _offered,
}


def _round(value: float, digits: int) -> float:
    # "+ 0.0" turns the -0.0 that rounding a tiny negative gives into 0.0.
    return round(value, digits) + 0.0


def sample_reading(reading: MeterReading, measurands: Iterable[str], *, context: str,
                   timestamp: float, offered_A: float | None = None) -> MeterSample:
    """The requested measurands of ``reading`` as one MeterSample, in request order.

    Unknown measurands are skipped; per-phase measurands give one value per
    phase the meter has (only L1 on a single-phase meter); Current.Offered is
    given only when ``offered_A`` is known. Energy and power are rounded to
    0.1 Wh / 0.1 W, voltages and currents to 0.01.
    """
    values = []
    for measurand in measurands:
        extract = _EXTRACTORS.get(measurand)
        if extract is None:
            continue
        values.extend(Sample(measurand, value, unit, phase, context)
                      for value, unit, phase in extract(reading, offered_A))
    return MeterSample(timestamp=timestamp, values=tuple(values))


def next_boundary(now: float, interval_s: float) -> float:
    """The first instant strictly after ``now`` that is a whole number of intervals after midnight UTC.

    Unix time has no leap seconds, so every UTC midnight is a multiple of
    86400 and aligning to the epoch aligns to midnight for intervals that
    divide a day (the only ones that make sense for clock-aligned data).
    """
    return (math.floor(now / interval_s) + 1) * interval_s


def _next_period(due: float, interval_s: float, now: float) -> float:
    """The next periodic due time after ``due``, skipping periods already missed (no burst)."""
    due += interval_s
    if due <= now:
        due += (math.floor((now - due) / interval_s) + 1) * interval_s
    return due


class SettingsSource(Protocol):
    """What the sampler needs of the settings store: values by name and change notification."""

    def __getitem__(self, name: str) -> Any:
        """The current value of setting ``name``."""

    def subscribe(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(name, value)`` after every change."""


class WallClock(Protocol):
    """What the sampler needs of the station clock: corrected Unix time."""

    def time(self) -> float:
        """Corrected Unix time in seconds."""


class MeterSampler:
    """Takes the station's periodic and clock-aligned meter samples and hands them to ``sink``.

    - Periodic: between ``transaction_started(evse_id)`` and
      ``transaction_ended(evse_id)``, every ``meter_value_sample_interval_s``
      seconds counted from the start, provided ``transaction_of(evse_id)``
      names a transaction; measurands ``meter_values_sampled_data``, context
      Sample.Periodic. The stop data (``stop_txn_sampled_data``) every
      ``tx_ended_interval_s``: in the same read when the intervals are equal,
      else in a stream of its own.
    - Clock-aligned: every ``clock_aligned_data_interval_s`` seconds on the
      boundaries of the corrected clock counted from midnight UTC, for every
      EVSE; measurands ``meter_values_aligned_data``, context Sample.Clock.

    An interval of 0 turns its stream off. An interval change restarts the
    timers; a measurand change applies from the next sample. A sample takes
    the meter's published reading (``current()``: the latest poll, or a read
    for a meter that is not polled), one younger than half the stream's interval;
    a stale or failed reading skips the sample (never a made-up value). Samples go out as
    ``sink(evse_id, sample, transaction_ref)``. The ``transaction_*`` methods
    and setting changes must happen on the event loop's thread.
    """

    def __init__(self, *, meters: Mapping[int, EnergyMeter], clock: WallClock,
                 settings: SettingsSource, sink: Sink, transaction_of: Callable[[int], str | None],
                 offered_A: Callable[[int], float] | None = None) -> None:
        self._meters = dict(meters)
        self._clock = clock
        self._settings = settings
        self._sink = sink
        self._transaction_of = transaction_of
        self._offered_A = offered_A
        self._in_transaction: set[int] = set()
        # Each stream remembers its interval, so re-setting the same value does not restart it.
        self._periodic: dict[tuple[int, str], tuple[float, asyncio.Task]] = {}  # by (EVSE, FOR_*)
        self._aligned: tuple[float, asyncio.Task] | None = None
        self._tasks: set[asyncio.Task] = set()  # every unfinished task, cancelled ones included
        self._failing: set[int] = set()  # EVSEs whose failure streak has been logged
        self._reading_listeners: list[Callable[[int, MeterReading], None]] = []
        self._running = False
        self._subscribed = False

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._running

    async def start(self) -> None:
        """Start the streams that are due now (aligned data, running transactions); idempotent."""
        if self._running:
            return
        if not self._subscribed:  # the settings store has no unsubscribe: subscribe once
            self._settings.subscribe(self._setting_changed)
            self._subscribed = True
        self._running = True
        self._restart_aligned()
        for evse_id in sorted(self._in_transaction):
            self._start_periodic(evse_id)

    async def stop(self) -> None:
        """Cancel every sampling task and wait until they have finished; idempotent."""
        self._running = False
        self._periodic.clear()
        self._aligned = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def transaction_started(self, evse_id: int) -> None:
        """A transaction began on ``evse_id``: periodic samples from one interval from now."""
        self._check_evse(evse_id)
        self._in_transaction.add(evse_id)
        self._cancel_periodic(evse_id)  # a new transaction restarts the count
        if self._running:
            self._start_periodic(evse_id)

    def transaction_ended(self, evse_id: int) -> None:
        """The transaction on ``evse_id`` ended: no more periodic samples (a read under way is dropped)."""
        self._check_evse(evse_id)
        self._in_transaction.discard(evse_id)
        self._cancel_periodic(evse_id)

    async def sample_now(self, evse_id: int, measurands: Iterable[str], *,
                         context: str) -> MeterSample | None:
        """A sample of ``evse_id``'s meter now (Transaction.Begin/End, Trigger samples).

        "Now" is a reading taken after the call: a poll the meter's poller runs
        at once (the bus keeps its one owner), since the value asked for may
        have changed since the last scheduled poll. None if the read failed or
        none of ``measurands`` could be produced.
        """
        self._check_evse(evse_id)
        return await self._take(evse_id, measurands, context, max_age_s=0.0)

    def add_reading_listener(self, listener: Callable[[int, MeterReading], None]) -> None:
        """Call ``listener(evse_id, reading)`` with the reading of every sample taken (monitoring).

        To hear every poll of a live meter instead, listen to the meter itself
        (``EnergyMeter.add_listener``).
        """
        self._reading_listeners.append(listener)

    # -- sampling ------------------------------------------------------------

    def _union(self, primary: str, extra: str) -> tuple[str, ...]:
        """The measurands of ``primary`` then those only ``extra`` (a setting the catalog may lack) asks for."""
        wanted = list(_as_list(self._settings[primary]))
        try:
            more = _as_list(self._settings[extra])
        except KeyError:
            more = ()
        return tuple(wanted + [m for m in more if m not in wanted])

    async def _take(self, evse_id: int, measurands: Iterable[str], context: str, *,
                    max_age_s: float | None = None) -> MeterSample | None:
        """A sample of ``evse_id`` holding the meter's published reading, if younger than ``max_age_s``.

        An older one makes the meter's poller take a reading for it.
        """
        wanted = tuple(m for m in _as_list(measurands) if m in _EXTRACTORS)
        if not wanted:
            return None  # no read for nothing
        meter = self._meters[evse_id]
        try:
            reading = await meter.current(max_age_s=max_age_s)
        except MeterReadError as exc:
            self._read_failed(evse_id, exc)
            return None
        self._read_succeeded(evse_id)
        self._tell(evse_id, reading)
        offered = None if self._offered_A is None else self._offered_A(evse_id)
        sample = sample_reading(reading, wanted, context=context, timestamp=self._clock.time(),
                                offered_A=offered)
        return sample if sample.values else None

    def _tell(self, evse_id: int, reading: MeterReading) -> None:
        for listener in list(self._reading_listeners):
            try:
                listener(evse_id, reading)
            except Exception:  # a monitoring bug must not cost a meter value
                log.exception("meter reading listener failed on EVSE %s", evse_id)

    def _read_failed(self, evse_id: int, exc: MeterReadError) -> None:
        # The meter itself logs every failure and raises meter-offline; once per streak is enough here.
        if evse_id not in self._failing:
            self._failing.add(evse_id)
            log.warning("EVSE %s: meter unreadable, its meter values are skipped until it "
                        "answers again: %s", evse_id, exc)

    def _read_succeeded(self, evse_id: int) -> None:
        if evse_id in self._failing:
            self._failing.discard(evse_id)
            log.info("EVSE %s: meter answers again, meter values resume", evse_id)

    def _deliver(self, evse_id: int, sample: MeterSample, ref: str | None, only: str | None = None) -> None:
        # A broken consumer must not end the stream: the next sample may well get through.
        try:
            if only is None:
                self._sink(evse_id, sample, ref)
            else:
                self._sink(evse_id, sample, ref, only=only)
        except Exception:
            log.exception("meter value sink failed on EVSE %s", evse_id)

    async def _periodic_loop(self, evse_id: int, interval_s: float, purpose: str = FOR_UPDATES) -> None:
        # Monotonic time: a clock correction must not stretch or squeeze a period.
        loop = asyncio.get_running_loop()
        due = loop.time() + interval_s
        while True:
            await asyncio.sleep(due - loop.time())
            ref = self._transaction_of(evse_id)
            if ref is not None:  # no transaction (any more) means nothing to attribute it to
                measurands, only = self._periodic_wants(purpose, interval_s)
                sample = await self._take(evse_id, measurands, PERIODIC, max_age_s=_stream_max_age(interval_s))
                if sample is not None:
                    self._deliver(evse_id, sample, ref, only)
            due = _next_period(due, interval_s, loop.time())

    def _periodic_wants(self, purpose: str, interval_s: float) -> tuple[tuple[str, ...], str | None]:
        """The measurands a periodic stream samples now, and the one use it serves alone (None: both)."""
        if purpose == FOR_END:
            return _as_list(self._settings[STOP_SAMPLED_DATA]), FOR_END
        if self._ended_interval() == interval_s:
            return self._union(SAMPLED_DATA, STOP_SAMPLED_DATA), None
        return _as_list(self._settings[SAMPLED_DATA]), FOR_UPDATES

    def _ended_interval(self) -> float:
        """The stop data's interval; a settings source without one (a 1.6 double) samples it with the rest."""
        try:
            return self._interval(ENDED_INTERVAL)
        except KeyError:
            return self._interval(SAMPLE_INTERVAL)

    async def _aligned_loop(self, interval_s: float) -> None:
        due = next_boundary(self._clock.time(), interval_s)
        while True:
            now = self._clock.time()
            if due - now > interval_s:  # the clock was set back: realign, do not wait out the jump
                due = next_boundary(now, interval_s)
            if now < due:
                await asyncio.sleep(min(due - now, CLOCK_RECHECK_S))
                continue
            await self._aligned_sample(interval_s)
            # max(): after the clock is set back, never take the same boundary twice.
            due = next_boundary(max(due, self._clock.time()), interval_s)

    async def _aligned_sample(self, interval_s: float) -> None:
        measurands = self._union(ALIGNED_DATA, STOP_ALIGNED_DATA)
        evse_ids = sorted(self._meters)
        # Concurrently, so one meter timing out does not push the others off the boundary.
        samples = await asyncio.gather(*(self._take(i, measurands, CLOCK, max_age_s=_stream_max_age(interval_s))
                                         for i in evse_ids))
        for evse_id, sample in zip(evse_ids, samples):
            if sample is not None:
                self._deliver(evse_id, sample, self._transaction_of(evse_id))

    # -- timers --------------------------------------------------------------

    def _setting_changed(self, name: str, value: Any) -> None:
        if not self._running:
            return  # start() reads the current values anyway
        if name in (SAMPLE_INTERVAL, ENDED_INTERVAL):
            for evse_id in sorted(self._in_transaction):
                self._start_periodic(evse_id)
        elif name == ALIGNED_INTERVAL:
            self._restart_aligned()

    def _start_periodic(self, evse_id: int) -> None:
        """Run ``evse_id``'s periodic streams at the configured intervals, restarting one whose interval changed.

        The stop data has a stream of its own only while its interval differs (see FOR_UPDATES).
        """
        interval, ended = self._interval(SAMPLE_INTERVAL), self._ended_interval()
        self._run_stream(evse_id, FOR_UPDATES, interval, f"meter-periodic-evse{evse_id}")
        self._run_stream(evse_id, FOR_END, 0.0 if ended == interval else ended, f"meter-ended-evse{evse_id}")

    def _run_stream(self, evse_id: int, purpose: str, interval: float, name: str) -> None:
        current = self._periodic.get((evse_id, purpose))
        if current is not None and current[0] == interval:
            return
        stream = self._periodic.pop((evse_id, purpose), None)
        if stream is not None:
            stream[1].cancel()
        if interval > 0:
            task = self._spawn(self._periodic_loop(evse_id, interval, purpose), name)
            self._periodic[(evse_id, purpose)] = (interval, task)

    def _cancel_periodic(self, evse_id: int) -> None:
        for purpose in (FOR_UPDATES, FOR_END):
            stream = self._periodic.pop((evse_id, purpose), None)
            if stream is not None:
                stream[1].cancel()

    def _restart_aligned(self) -> None:
        interval = self._interval(ALIGNED_INTERVAL)
        if self._aligned is not None and self._aligned[0] == interval:
            return
        if self._aligned is not None:
            self._aligned[1].cancel()
            self._aligned = None
        if interval > 0:
            self._aligned = (interval, self._spawn(self._aligned_loop(interval), "meter-aligned"))

    def _interval(self, name: str) -> float:
        """Setting ``name`` as an interval in seconds; 0 (off) if it is not a number >= 0."""
        value = self._settings[name]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and value >= 0):
            log.error("setting %s = %r is not an interval in seconds; treating it as 0 (off)", name, value)
            return 0.0
        return value

    def _spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        # Forget a stream that died of a bug, so the next start or setting change can replace it.
        self._periodic = {i: s for i, s in self._periodic.items() if s[1] is not task}
        if self._aligned is not None and self._aligned[1] is task:
            self._aligned = None
        if not task.cancelled() and task.exception() is not None:
            log.error("%s stopped", task.get_name(), exc_info=task.exception())

    def _check_evse(self, evse_id: int) -> None:
        if evse_id not in self._meters:
            raise ValueError(f"unknown EVSE {evse_id!r} (metered: {sorted(self._meters)})")

    def __repr__(self) -> str:
        aligned = "off" if self._aligned is None else f"{self._aligned[0]:g}s"
        return (f"<MeterSampler {'running' if self._running else 'stopped'}"
                f" periodic={sorted(self._periodic)} aligned={aligned}>")


def _stream_max_age(interval_s: float) -> float:
    """How old a reading a stream's sample may hold: half its period.

    A stream sampling faster than the meter is polled would otherwise repeat
    one reading; its sample then gets a reading of its own from the poller.
    """
    return interval_s / 2


def _as_list(measurands) -> tuple[str, ...]:
    """A measurand setting as a tuple; a 1.6-style CSV string is split, never iterated letter by letter."""
    if isinstance(measurands, str):
        return tuple(m.strip() for m in measurands.split(",") if m.strip())
    return tuple(measurands)
