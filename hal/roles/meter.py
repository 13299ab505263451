"""The energy meter role: one checked reading at a time, never a made-up one."""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time

from hal.errors import EnergyWentBackwards, MeterReadError, MeterTimeout
from hal.events import Emit, MeterReading
from hal.faults import FaultTracker
from hal.roles._device import Device, check_positive

log = logging.getLogger(__name__)

METER_OFFLINE = "meter-offline"

# Plausibility bounds that catch a register map with the wrong scale
# (mV read as V, W as kW), not limits of any real installation.
MAX_VOLTAGE_V = 1000.0
MAX_CURRENT_A = 1000.0
MAX_POWER_W = 1_000_000.0


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
    """

    def __init__(
        self,
        evse_id: int,
        *,
        emit: Emit,
        offline_after: int = 3,
        read_timeout_s: float = 2.0,
        max_age_s: float | None = None,
    ) -> None:
        if isinstance(offline_after, bool) or not isinstance(offline_after, int) or offline_after < 1:
            raise ValueError(f"offline_after must be an integer >= 1, not {offline_after!r}")
        self.evse_id = evse_id
        self.offline_after = offline_after
        self.read_timeout_s = check_positive("read_timeout_s", read_timeout_s)
        self.max_age_s = None if max_age_s is None else check_positive("max_age_s", max_age_s)
        self._faults = FaultTracker(evse_id, emit=emit)
        self._last: MeterReading | None = None
        self._failures = 0
        # Reads are serialised so the backwards check compares in order.
        self._mutex = asyncio.Lock()

    @property
    def last_reading(self) -> MeterReading | None:
        """The last accepted reading, or None before the first one."""
        return self._last

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

    async def read(self) -> MeterReading:
        """Read the meter: a checked reading, or MeterReadError (MeterTimeout, EnergyWentBackwards)."""
        async with self._mutex:
            try:
                reading = await self._fetch()
                self._check(reading)
            except MeterReadError as exc:
                self._failed(exc)
                raise
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
        log.warning("EVSE %s meter read failed (%d in a row): %s", self.evse_id, self._failures, exc)
        if self._failures >= self.offline_after:
            self._faults.raise_fault(METER_OFFLINE, info=str(exc))

    def _succeeded(self, reading: MeterReading) -> None:
        self._failures = 0
        self._last = reading
        self._faults.clear_fault(METER_OFFLINE)

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
