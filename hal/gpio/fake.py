"""An in-memory GPIO backend for tests: drivable inputs, recorded outputs, simulated wiring.

Drive: ``set_input(line, value)`` changes an input and delivers the edge on
the event loop (through the same thread-safe bridge a real backend uses, so
it may be called from any thread). Observe: ``history`` holds every output
level set, with a timestamp. Simulate: ``wire(output, input, delay_s=...)``
makes an input follow an output (a healthy contactor's mirror contact, a
lock's position switch); ``stick(input, value)`` freezes it (a weld);
``fail_writes`` makes writes to a line raise OSError (a broken driver).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NamedTuple

from hal.gpio.backend import GpioBackend, GpioLineError, Line, Pull


class Write(NamedTuple):
    """One output change: when, which line, the logical value and the physical level."""

    t: float
    line: Line
    value: bool
    level: bool


class _Wire(NamedTuple):
    target: Line
    delay_s: float
    invert: bool
    latch: bool


class FakeGpioBackend(GpioBackend):
    """GPIO lines in memory; see the module docstring for how tests drive and observe it."""

    name = "fake"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.history: list[Write] = []
        self.released: list[Line] = []
        self.fail_writes: set[Line] = set()
        self._levels: dict[Line, bool] = {}
        self._wires: dict[Line, list[_Wire]] = {}
        self._stuck: dict[Line, bool] = {}

    # ------------------------------------------------------------ test API

    def values(self, line: Line) -> list[bool]:
        """Logical values written to ``line`` (its set-up level first), oldest first."""
        return [w.value for w in self.history if w.line == line]

    def levels(self, line: Line) -> list[bool]:
        """Physical levels written to ``line``, oldest first."""
        return [w.level for w in self.history if w.line == line]

    def level(self, line: Line) -> bool:
        """The physical level of a set-up line now."""
        self._state(line)
        return self._levels[line]

    def set_input(self, line: Line, value: bool, *, physical: bool = False) -> None:
        """Move input ``line`` to ``value`` (logical, or a level if ``physical``); stuck lines ignore it."""
        if self._state(line).output:
            raise GpioLineError(f"GPIO line {line!r} is an output; drive it with write()")
        if line in self._stuck:
            return
        self._move(line, value if physical else self._to_level(line, value))

    def wire(self, output: Line, target: Line, *, delay_s: float = 0.0, invert: bool = False,
             latch: bool = False) -> None:
        """Make input ``target`` follow output ``output`` (logically) after ``delay_s``.

        ``invert`` makes it follow the opposite value. ``latch`` moves it only
        while the output is active and leaves it there when the output drops
        (a motor lock's position switch stays put between pulses).
        """
        self._wires.setdefault(output, []).append(_Wire(target, delay_s, invert, latch))
        if output in self._lines:
            self._follow(output)

    def stick(self, line: Line, value: bool) -> None:
        """Freeze input ``line`` at logical ``value`` (a welded contact, a jammed lock).

        May be called before the line is set up: it then starts stuck.
        """
        self._stuck[line] = bool(value)
        if line in self._lines:
            self._move(line, self._to_level(line, value))

    def unstick(self, line: Line) -> None:
        """Let a stuck input follow its wiring again."""
        self._stuck.pop(line, None)
        self._refresh_wires()

    def setup_output(self, line: Line, *, initial: bool, active_high: bool = True) -> None:
        """Set up an output; its initial level is recorded in ``history`` like any write."""
        super().setup_output(line, initial=initial, active_high=active_high)
        self._record(line, self._levels[line])
        self._follow(line)

    def setup_input(self, line: Line, *, pull: Pull = "off", active_high: bool = True,
                    debounce_ms: int = 0) -> None:
        """Set up an input; a stuck value or a wire from a set-up output applies at once."""
        super().setup_input(line, pull=pull, active_high=active_high, debounce_ms=debounce_ms)
        if line in self._stuck:
            self._levels[line] = self._to_level(line, self._stuck[line])
        self._refresh_wires()

    # --------------------------------------------------------------- hooks

    def _setup_output(self, line: Line, level: bool) -> None:
        self._levels[line] = level

    def _write(self, line: Line, level: bool) -> None:
        if line in self.fail_writes:
            raise OSError(f"fake GPIO line {line!r}: write failed (injected)")
        self._levels[line] = level
        self._record(line, level)
        self._follow(line)

    def _setup_input(self, line: Line, pull: Pull, debounce_ms: int) -> None:
        self._levels[line] = pull == "up"

    def _read(self, line: Line) -> bool:
        return self._levels[line]

    def _watch(self, line: Line) -> None:
        """Edges come from ``set_input``; nothing to start."""

    def _release(self, line: Line, output: bool) -> None:
        self._levels.pop(line, None)
        self.released.append(line)

    # ------------------------------------------------------------ internals

    def _record(self, line: Line, level: bool) -> None:
        self.history.append(Write(self.clock(), line, self._logical(line, level), level))

    def _to_level(self, line: Line, value: bool) -> bool:
        return bool(value) == self._active_high(line)

    def _move(self, line: Line, level: bool) -> None:
        if line not in self._levels or self._levels[line] == level:
            return
        self._levels[line] = level
        self._post_edge(line)

    def _follow(self, output: Line) -> None:
        value = self._logical(output, self._levels[output])
        for wire in self._wires.get(output, ()):
            if value or not wire.latch:
                self._schedule(wire, value != wire.invert)

    def _refresh_wires(self) -> None:
        for output in self._wires:
            if output in self._lines:
                self._follow(output)

    def _schedule(self, wire: _Wire, value: bool) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if wire.delay_s <= 0 or loop is None:
            self._settle(wire.target, value)
        else:
            loop.call_later(wire.delay_s, self._settle, wire.target, value)

    def _settle(self, target: Line, value: bool) -> None:
        if target in self._lines and target not in self._stuck:
            self._move(target, self._to_level(target, value))
