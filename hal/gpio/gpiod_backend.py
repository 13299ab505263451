"""GPIO backend over ``gpiod`` >= 2 (libgpiod v2 bindings): Raspberry Pi 5, any Linux board.

Each line gets its own line request on one open chip, so a device can
release its lines alone and an output's initial level is part of its
request (the kernel applies it atomically with the direction). Edges arrive
through the request's file descriptor, watched with ``loop.add_reader``:
the event loop wakes only on a real edge, with no thread and no polling.

Polarity is applied by ``GpioBackend`` like for every backend; the kernel's
own ``active_low`` stays off so physical levels mean the same here as in
``rpi_gpio`` and ``fake``. Debounce uses the kernel's ``debounce_period``
(done in software by the kernel when the chip has no hardware debounce).

``gpiod`` is imported when the backend is constructed, never when this
module is imported. Debian's ``python3-libgpiod`` (Raspberry Pi OS Bookworm)
is the old v1 API and is refused with a clear message.
"""

from __future__ import annotations

import importlib
import logging
from datetime import timedelta

from hal.errors import HalStartError
from hal.gpio.backend import GpioBackend, GpioLibraryMissing, Line, Pull

log = logging.getLogger(__name__)

INSTALL_HINT = "install it with: pip install 'ocpp-agent[pi5]'"
DEFAULT_CHIP = "/dev/gpiochip0"


def import_gpiod():
    """Import and return ``gpiod`` >= 2; GpioLibraryMissing with an install hint otherwise."""
    try:
        gpiod = importlib.import_module("gpiod")
    except ImportError as exc:
        raise GpioLibraryMissing(f"GPIO backend 'gpiod' needs the gpiod package (>= 2); "
                                 f"{INSTALL_HINT}") from exc
    if not (hasattr(gpiod, "request_lines") and hasattr(gpiod, "LineSettings")):
        version = getattr(gpiod, "__version__", "1.x")
        raise GpioLibraryMissing(f"GPIO backend 'gpiod' needs gpiod >= 2, found the v1 API "
                                 f"({version}, e.g. Debian's python3-libgpiod); {INSTALL_HINT}")
    return gpiod


class GpiodBackend(GpioBackend):
    """Lines of one GPIO chip by offset or by name (``"GPIO17"`` on a Raspberry Pi).

    Options: ``chip`` is the character device (``/dev/gpiochip0``; on a Pi 5
    with a kernel older than 6.6.45 the header is ``/dev/gpiochip4``),
    ``consumer`` the label shown by ``gpioinfo``.
    """

    name = "gpiod"

    def __init__(self, *, chip: str = DEFAULT_CHIP, consumer: str = "ocpp-agent") -> None:
        super().__init__()
        self._gpiod = import_gpiod()
        self.chip_path = chip
        self.consumer = consumer
        self._requests: dict[Line, object] = {}
        self._offsets: dict[Line, int] = {}
        self._readers: dict[Line, int] = {}
        try:
            self._chip = self._gpiod.Chip(chip)
        except OSError as exc:
            raise HalStartError(f"gpiod cannot open GPIO chip {chip}: {exc}") from exc

    def _setup_output(self, line: Line, level: bool) -> None:
        enums = self._gpiod.line
        settings = self._gpiod.LineSettings(
            direction=enums.Direction.OUTPUT,
            output_value=self._value(level),
            active_low=False,
        )
        self._request(line, settings)

    def _write(self, line: Line, level: bool) -> None:
        self._requests[line].set_value(self._offsets[line], self._value(level))

    def _setup_input(self, line: Line, pull: Pull, debounce_ms: int) -> None:
        enums = self._gpiod.line
        bias = {"up": enums.Bias.PULL_UP, "down": enums.Bias.PULL_DOWN,
                "off": enums.Bias.DISABLED}[pull]
        settings = self._gpiod.LineSettings(
            direction=enums.Direction.INPUT,
            bias=bias,
            # Edges are requested up front: the kernel buffers them (bounded)
            # until a callback is added and the fd is watched.
            edge_detection=enums.Edge.BOTH,
            debounce_period=timedelta(milliseconds=debounce_ms),
            active_low=False,
        )
        self._request(line, settings)

    def _read(self, line: Line) -> bool:
        value = self._requests[line].get_value(self._offsets[line])
        return value == self._gpiod.line.Value.ACTIVE

    def _watch(self, line: Line) -> None:
        fd = self._requests[line].fd
        self._loop.add_reader(fd, self._drain, line)
        self._readers[line] = fd

    def _release(self, line: Line, output: bool) -> None:
        fd = self._readers.pop(line, None)
        if fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(fd)
        self._offsets.pop(line, None)
        request = self._requests.pop(line, None)
        if request is not None:
            request.release()

    def _close(self) -> None:
        self._chip.close()

    def _drain(self, line: Line) -> None:
        # Loop thread, fd readable. Empty the kernel buffer, then judge the
        # level once: a burst of edges is one change (or none) to the devices.
        request = self._requests.get(line)
        if request is None:
            return
        try:
            request.read_edge_events()
        except OSError:
            log.exception("gpiod: cannot read edge events of line %r", line)
            return
        self._edge(line)

    def _request(self, line: Line, settings) -> None:
        offset = self._offset(line)
        try:
            request = self._chip.request_lines(config={offset: settings},
                                               consumer=self.consumer)
        except OSError as exc:
            # EBUSY: another process (or a kernel driver) holds the line.
            raise HalStartError(f"gpiod cannot request line {line!r} (offset {offset}) "
                                f"on {self.chip_path}: {exc}") from exc
        self._requests[line] = request
        self._offsets[line] = offset

    def _offset(self, line: Line) -> int:
        try:
            return self._chip.line_offset_from_id(line)
        except (OSError, ValueError) as exc:
            raise HalStartError(f"gpiod: no line {line!r} on {self.chip_path}: {exc}") from exc

    def _value(self, level: bool):
        values = self._gpiod.line.Value
        return values.ACTIVE if level else values.INACTIVE

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" chip={self.chip_path}>"
