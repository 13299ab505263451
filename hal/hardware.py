"""The assembled hardware of a station: one ``EvseHardware`` per EVSE, in a ``Hal``.

``Hal`` owns the life cycle (start, safe state, close) of every device. The
role classes and event types are re-exported here for convenience.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hal.errors import HalStartError, LockRefused
from hal.events import (
    Emit, FaultCleared, FaultRaised, HalEvent, MeterReading, PilotChanged, PilotState,
    TokenPresented,
)
from hal.roles import (
    ConnectorLock, Contactor, Device, Display, EnergyMeter, LimitInput, PilotController, TokenReader,
)

log = logging.getLogger(__name__)

__all__ = [
    "ConnectorLock", "Contactor", "Display", "Emit", "EnergyMeter", "EvseHardware",
    "FaultCleared", "FaultRaised", "Hal", "HalEvent", "LimitInput", "MeterReading", "PilotChanged",
    "PilotController", "PilotState", "TokenPresented", "TokenReader",
]


@dataclass
class EvseHardware:
    """The devices of one EVSE; every device must carry the same ``evse_id``."""

    evse_id: int
    contactor: Contactor
    lock: ConnectorLock
    meter: EnergyMeter
    pilot: PilotController

    def __post_init__(self) -> None:
        for device in self.devices():
            if device.evse_id != self.evse_id:
                raise ValueError(f"{device!r} belongs to EVSE {device.evse_id}, "
                                 f"not EVSE {self.evse_id}")

    def devices(self) -> tuple[Device, ...]:
        """The devices in start order: the contactor first, so power is safe before anything else."""
        return (self.contactor, self.lock, self.meter, self.pilot)


class Hal:
    """Every device of the station, started, made safe and released together.

    ``safe_state()`` is the one shutdown path for outputs: for each EVSE it
    suspends the current offer, withdraws the interlock and opens the
    contactor, and only then unlocks. It never raises.
    """

    def __init__(
        self,
        *,
        evses: Iterable[EvseHardware],
        token_reader: TokenReader | None = None,
        display: Display | None = None,
        limit_input: LimitInput | None = None,
        closers: Iterable[Callable[[], object]] = (),
    ) -> None:
        self.evses: dict[int, EvseHardware] = {}
        for evse in evses:
            if evse.evse_id in self.evses:
                raise ValueError(f"EVSE {evse.evse_id} given twice")
            self.evses[evse.evse_id] = evse
        self.token_reader = token_reader
        self.display = display
        # Optional: a ripple-control / energy-manager contact that caps the current while active.
        self.limit_input = limit_input
        # Shared resources the devices use but do not own (a GPIO chip, a Modbus bus),
        # released after every device has stopped.
        self._closers = list(closers)
        self._started: list[Device] = []
        # Asked by safe_state: the EVSEs whose cable it leaves locked (their contactor opens all the same),
        # for a restart that resumes their transactions: the driver's cable stays in meanwhile.
        self.keep_locked: Callable[[], Iterable[int]] = tuple

    def add_closer(self, closer: Callable[[], object]) -> None:
        """Release ``closer`` (sync or async) in ``close()``, after every device has stopped."""
        self._closers.append(closer)

    @property
    def started(self) -> bool:
        """True between a successful ``start()`` and ``close()``."""
        return bool(self._started)

    def evse(self, evse_id: int) -> EvseHardware:
        """The hardware of EVSE ``evse_id``; KeyError names the known ids."""
        try:
            return self.evses[evse_id]
        except KeyError:
            raise KeyError(f"unknown EVSE {evse_id!r} (known: {sorted(self.evses)})") from None

    def devices(self) -> Iterator[Device]:
        """Every device in start order."""
        for evse in self.evses.values():
            yield from evse.devices()
        yield from (d for d in (self.token_reader, self.display, self.limit_input) if d is not None)

    async def start(self, *, only: Iterable[Device] | None = None) -> None:
        """Start every device (or just ``only``, for bench work); on failure, stop those
        started and raise HalStartError.

        Calling it again while started does nothing.
        """
        if self._started:
            return
        for device in self.devices() if only is None else only:
            try:
                await device.start()
            except Exception as exc:
                await self._stop_started()
                raise HalStartError(f"cannot start {device!r}: {exc}") from exc
            self._started.append(device)

    async def safe_state(self) -> None:
        """Put every EVSE in its safe state: 0 A, contactor open, then unlock (but ``keep_locked()``). Never raises."""
        try:
            keep = frozenset(self.keep_locked())
        except Exception:  # never let it stand between the station and its safe state: unlock all
            log.exception("cannot tell which cables to keep locked")
            keep = frozenset()
        await asyncio.gather(*(self._make_safe(evse, keep_locked=keep) for evse in self.evses.values()))

    async def close(self) -> None:
        """Safe state first, then release every device. Never raises."""
        await self.safe_state()
        await self._stop_started()
        for closer in self._closers:
            try:
                result = closer()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("cannot release %r", closer)

    async def _make_safe(self, evse: EvseHardware, *, keep_locked: frozenset[int] = frozenset()) -> None:
        # A device never started was never energised, and its lines are not ours to drive.
        started = set(map(id, self._started))
        if id(evse.pilot) in started:
            self._suspend_offer(evse)
        if id(evse.contactor) in started:
            await self._open_contactor(evse)
        if id(evse.lock) in started and evse.evse_id not in keep_locked:
            await self._unlock(evse)

    @staticmethod
    def _suspend_offer(evse: EvseHardware) -> None:
        try:
            evse.pilot.set_current_limit_A(0)
        except Exception:
            log.exception("EVSE %s: cannot suspend the current offer", evse.evse_id)

    @staticmethod
    async def _open_contactor(evse: EvseHardware) -> None:
        try:
            evse.contactor.allow_power(False)
            if not await evse.contactor.open():
                log.error("EVSE %s: contactor feedback does not read open", evse.evse_id)
        except Exception:
            log.exception("EVSE %s: cannot open the contactor", evse.evse_id)

    @staticmethod
    async def _unlock(evse: EvseHardware) -> None:
        try:
            # The lock re-checks the contactor itself: a contactor that did
            # not open keeps the cable locked (LockRefused).
            await evse.lock.unlock()
        except LockRefused as exc:
            log.error("EVSE %s: cable stays locked: %s", evse.evse_id, exc)
        except Exception:
            log.exception("EVSE %s: cannot unlock the connector", evse.evse_id)

    async def _stop_started(self) -> None:
        while self._started:
            device = self._started.pop()
            try:
                await device.stop()
            except Exception:
                log.exception("cannot release %r", device)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} evses={sorted(self.evses)}"
                f" reader={'yes' if self.token_reader else 'no'}"
                f" display={'yes' if self.display else 'no'}"
                f" limit_input={'yes' if self.limit_input else 'no'} started={len(self._started)}>")
