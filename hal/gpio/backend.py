"""The GPIO backend interface: digital lines with polarity, safe levels and edge callbacks.

``GpioBackend`` is a template (python-can style): the public methods here check
usage, apply polarity and keep the safe level of every output; a backend
module (``rpi_gpio``, ``gpiod_backend``, ``fake``) only moves physical levels
through the private hooks. Values are *logical* everywhere above this class
(True = active: relay energised, contact made); ``_to_level`` is the one place
where a logical value becomes a physical level and back.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from hal.errors import HalError

log = logging.getLogger(__name__)

Line = int | str
Pull = Literal["up", "down", "off"]
EdgeCallback = Callable[[Line, bool], None]

PULLS: tuple[str, ...] = ("up", "down", "off")


class GpioError(HalError):
    """Base of GPIO backend errors."""


class GpioLibraryMissing(GpioError, ImportError):
    """The Python library behind the chosen GPIO backend is not installed (or too old)."""


class UnknownGpioBackend(GpioError, LookupError):
    """The configured GPIO backend name is not one we have."""


class GpioLineError(GpioError, ValueError):
    """A line was used the wrong way: not set up, set up twice, or written as an input."""


class GpioClosed(GpioError, RuntimeError):
    """The backend was used after ``close()``."""


def _to_level(value: bool, active_high: bool) -> bool:
    """Logical value <-> physical level; the same XOR works in both directions."""
    return bool(value) == bool(active_high)


@dataclass
class _LineState:
    """Bookkeeping of one set-up line (values are logical)."""

    output: bool
    active_high: bool
    safe: bool = False
    value: bool = False
    debounce_ms: int = 0
    callbacks: list[EdgeCallback] = field(default_factory=list)
    reported: bool | None = None


class GpioBackend(abc.ABC):
    """Digital GPIO lines behind one small interface, chosen by name (``open_backend``).

    Contract:

    - ``setup_output(line, initial=...)`` drives the line to ``initial`` as it
      is set up (never a glitch through the other level) and remembers it as
      the line's *safe* level; ``close()`` and ``release()`` put it back there.
    - ``write``/``read`` take and return logical values; ``active_high=False``
      inverts the physical level, here and nowhere else.
    - ``add_edge_callback(line, cb)`` calls ``cb(line, value)`` on the event
      loop thread when the input's logical value changes. Backends whose
      library calls back from its own thread bridge with
      ``loop.call_soon_threadsafe`` (``_post_edge``). Repeated edges that end
      at the level already reported are coalesced.
    - Nothing is opened before the backend is constructed; constructing it
      imports the hardware library, so importing a backend module never does.
    """

    name: ClassVar[str] = "abstract"

    def __init__(self) -> None:
        self._lines: dict[Line, _LineState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # ------------------------------------------------------------ public API

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    @property
    def lines(self) -> tuple[Line, ...]:
        """The lines currently set up, in set-up order."""
        return tuple(self._lines)

    def setup_output(self, line: Line, *, initial: bool, active_high: bool = True) -> None:
        """Claim ``line`` as an output driven to ``initial`` (logical), its safe level."""
        self._check_new(line)
        state = _LineState(output=True, active_high=active_high, safe=bool(initial),
                           value=bool(initial))
        self._setup_output(line, _to_level(initial, active_high))
        self._lines[line] = state

    def write(self, line: Line, value: bool) -> None:
        """Drive output ``line`` to the logical ``value``."""
        state = self._state(line)
        if not state.output:
            raise GpioLineError(f"GPIO line {line!r} is an input; it cannot be written")
        self._write(line, _to_level(value, state.active_high))
        state.value = bool(value)

    def setup_input(self, line: Line, *, pull: Pull = "off", active_high: bool = True,
                    debounce_ms: int = 0) -> None:
        """Claim ``line`` as an input with bias ``pull`` and a debounce period."""
        self._check_new(line)
        if pull not in PULLS:
            raise ValueError(f"pull must be one of {', '.join(PULLS)}, not {pull!r}")
        if isinstance(debounce_ms, bool) or not isinstance(debounce_ms, int) or debounce_ms < 0:
            raise ValueError(f"debounce_ms must be an integer >= 0, not {debounce_ms!r}")
        self._setup_input(line, pull, debounce_ms)
        self._lines[line] = _LineState(output=False, active_high=active_high,
                                       debounce_ms=debounce_ms)

    def read(self, line: Line) -> bool:
        """The logical value of ``line`` now (an output reads back its driven level)."""
        state = self._state(line)
        return _to_level(self._read(line), state.active_high)

    def add_edge_callback(self, line: Line, callback: EdgeCallback) -> None:
        """Call ``callback(line, value)`` on the event loop thread whenever input ``line`` changes.

        Must be called from the event loop thread: the running loop is the
        one edges are delivered to.
        """
        state = self._state(line)
        if state.output:
            raise GpioLineError(f"GPIO line {line!r} is an output; it has no edges to watch")
        self._bind_loop()
        if not state.callbacks:
            state.reported = self.read(line)
            # Watch before registering: a failed watch leaves no callback
            # that looks armed but will never be called.
            self._watch(line)
        state.callbacks.append(callback)

    def release(self, line: Line) -> None:
        """Give ``line`` back: an output is first driven to its safe level. Never raises."""
        state = self._lines.get(line)
        if state is None or self._closed:
            return
        if state.output:
            self._drive_safe(line, state)
        del self._lines[line]
        try:
            self._release(line, state.output)
        except Exception:
            log.exception("GPIO %s: cannot release line %r", self.name, line)

    def close(self) -> None:
        """Every output to its safe level first, then release every line. Never raises.

        All outputs go safe before any line is released, so the slowest
        release cannot leave a contactor energised while others are handled.
        """
        if self._closed:
            return
        for line, state in self._lines.items():
            if state.output:
                self._drive_safe(line, state)
        for line in reversed(list(self._lines)):
            state = self._lines.pop(line)
            try:
                self._release(line, state.output)
            except Exception:
                log.exception("GPIO %s: cannot release line %r", self.name, line)
        self._closed = True
        try:
            self._close()
        except Exception:
            log.exception("GPIO %s: cannot close the backend", self.name)

    # --------------------------------------------------- helpers for backends

    def _post_edge(self, line: Line) -> None:
        """Thread-safe: ask the loop to judge an edge on ``line`` (backends call it from any thread)."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._edge, line)
        except RuntimeError:
            pass  # the loop is closed: the agent is shutting down, nobody is listening

    def _edge(self, line: Line) -> None:
        """On the loop thread: read the input and call its callbacks if the value changed."""
        state = self._lines.get(line)
        if state is None or not state.callbacks:
            return  # released meanwhile
        try:
            value = self.read(line)
        except Exception:
            log.exception("GPIO %s: cannot read line %r after an edge", self.name, line)
            return
        if value == state.reported:
            return
        state.reported = value
        for callback in list(state.callbacks):
            try:
                callback(line, value)
            except Exception:
                log.exception("GPIO %s: edge callback %r failed on line %r",
                              self.name, callback, line)

    def _logical(self, line: Line, level: bool) -> bool:
        """The logical value a physical ``level`` on ``line`` stands for."""
        return _to_level(level, self._state(line).active_high)

    def _active_high(self, line: Line) -> bool:
        return self._state(line).active_high

    def _debounce_ms(self, line: Line) -> int:
        return self._state(line).debounce_ms

    # ------------------------------------------------------------- internals

    def _drive_safe(self, line: Line, state: _LineState) -> None:
        try:
            self._write(line, _to_level(state.safe, state.active_high))
            state.value = state.safe
        except Exception:
            log.exception("GPIO %s: cannot drive line %r to its safe level", self.name, line)

    def _bind_loop(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise GpioError("add_edge_callback must be called from the running event loop") from None
        if self._loop is not None and self._loop is not loop:
            raise GpioError("edge callbacks of one backend must all run on one event loop")
        self._loop = loop

    def _check_new(self, line: Line) -> None:
        if self._closed:
            raise GpioClosed(f"GPIO backend {self.name} is closed")
        if isinstance(line, bool) or not isinstance(line, (int, str)):
            raise GpioLineError(f"a GPIO line is a number or a name, not {line!r}")
        if line in self._lines:
            raise GpioLineError(f"GPIO line {line!r} is already set up")

    def _state(self, line: Line) -> _LineState:
        if self._closed:
            raise GpioClosed(f"GPIO backend {self.name} is closed")
        try:
            return self._lines[line]
        except KeyError:
            raise GpioLineError(f"GPIO line {line!r} is not set up") from None

    def _repr_input(self, line: Line) -> str:
        try:
            return "on" if self.read(line) else "off"
        except Exception:
            return "unreadable"

    # ------------------------------------------------------ hooks (physical)

    @abc.abstractmethod
    def _setup_output(self, line: Line, level: bool) -> None:
        """Hook: claim ``line`` as an output already at physical ``level``."""

    @abc.abstractmethod
    def _write(self, line: Line, level: bool) -> None:
        """Hook: drive output ``line`` to physical ``level``."""

    @abc.abstractmethod
    def _setup_input(self, line: Line, pull: Pull, debounce_ms: int) -> None:
        """Hook: claim ``line`` as an input with bias and debounce."""

    @abc.abstractmethod
    def _read(self, line: Line) -> bool:
        """Hook: the physical level of ``line``."""

    @abc.abstractmethod
    def _watch(self, line: Line) -> None:
        """Hook: start reporting edges of input ``line`` through ``_edge``/``_post_edge``."""

    @abc.abstractmethod
    def _release(self, line: Line, output: bool) -> None:
        """Hook: give ``line`` back to the system (stop watching it first)."""

    def _close(self) -> None:
        """Hook: release what the backend holds beyond its lines (a chip handle)."""

    def __repr__(self) -> str:
        if self._closed:
            return f"<{type(self).__name__} closed>"
        parts = []
        for line, state in self._lines.items():
            if state.output:
                parts.append(f"{line}=out:{'on' if state.value else 'off'}")
            else:
                parts.append(f"{line}=in:{self._repr_input(line)}")
        return f"<{type(self).__name__} {' '.join(parts) or 'no lines'}>"
