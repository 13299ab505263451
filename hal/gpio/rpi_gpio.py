"""GPIO backend over ``RPi.GPIO`` (Raspberry Pi 4 and older), BCM line numbers.

``RPi.GPIO`` is imported when the backend is constructed, never when this
module is imported. Its edge callbacks run on the library's own thread; they
only post the line number to the event loop (``_post_edge``), where the level
is read and the device callbacks run.

Known limits of the library (not of this module):

- It does not work on a Raspberry Pi 5 (RP1 I/O chip): use the ``gpiod`` backend.
- On Raspberry Pi OS kernels 6.6 and later ``add_event_detect`` fails with
  "Failed to add edge detection" (the sysfs GPIO base moved to 512): use the
  ``gpiod`` backend, or the drop-in ``rpi-lgpio`` package that provides
  ``RPi.GPIO`` over lgpio.
- ``bouncetime`` drops edges for that long after an accepted one, so the
  *last* edge of a bounce burst can be lost. Each accepted edge therefore
  also schedules a re-read once the bounce time has passed.
"""

from __future__ import annotations

import importlib

from hal.errors import HalStartError
from hal.gpio.backend import GpioBackend, GpioLibraryMissing, Line, Pull

INSTALL_HINT = "install it with: pip install 'ocpp-agent[pi]' (or use [hal] gpio = \"gpiod\")"

# Margin after the bounce time before the re-read: the library's own timing
# is measured from its callback, which runs slightly after the edge.
_RECHECK_MARGIN_S = 0.005


def import_rpi_gpio():
    """Import and return ``RPi.GPIO``; GpioLibraryMissing with an install hint if absent."""
    try:
        return importlib.import_module("RPi.GPIO")
    except ImportError as exc:
        raise GpioLibraryMissing(f"GPIO backend 'rpi-gpio' needs the RPi.GPIO package; "
                                 f"{INSTALL_HINT}") from exc


class RpiGpioBackend(GpioBackend):
    """``RPi.GPIO`` lines by BCM number; outputs set up with their initial level.

    Release uses ``GPIO.cleanup(line)`` per line (never the global
    ``cleanup()``), which turns an output back into an input: the relay
    driver's own pull resistor must hold it off from then on.
    """

    name = "rpi-gpio"

    def __init__(self) -> None:
        super().__init__()
        self._gpio = import_rpi_gpio()
        self._watched: set[Line] = set()
        try:
            # We set every line's level explicitly, so the "channel already in
            # use" warning (left over from an earlier process) is noise.
            self._gpio.setwarnings(False)
            self._gpio.setmode(self._gpio.BCM)
        except (RuntimeError, ValueError) as exc:
            raise HalStartError(f"RPi.GPIO cannot be opened in BCM mode: {exc} "
                                "(a Raspberry Pi 5 needs [hal] gpio = \"gpiod\")") from exc

    def _setup_output(self, line: Line, level: bool) -> None:
        gpio = self._gpio
        # initial= sets the level before the pin becomes an output: no glitch.
        self._call(f"set up output {line}", gpio.setup, self._channel(line), gpio.OUT,
                   initial=gpio.HIGH if level else gpio.LOW)

    def _write(self, line: Line, level: bool) -> None:
        self._gpio.output(line, self._gpio.HIGH if level else self._gpio.LOW)

    def _setup_input(self, line: Line, pull: Pull, debounce_ms: int) -> None:
        gpio = self._gpio
        bias = {"up": gpio.PUD_UP, "down": gpio.PUD_DOWN, "off": gpio.PUD_OFF}[pull]
        self._call(f"set up input {line}", gpio.setup, self._channel(line), gpio.IN,
                   pull_up_down=bias)

    def _read(self, line: Line) -> bool:
        return bool(self._gpio.input(line))

    def _watch(self, line: Line) -> None:
        debounce_ms = self._debounce_ms(line)
        # bouncetime must be > 0 or left out (RPi.GPIO rejects 0).
        options = {"bouncetime": debounce_ms} if debounce_ms > 0 else {}
        self._call(f"watch edges of line {line}", self._gpio.add_event_detect, line,
                   self._gpio.BOTH, callback=self._on_thread_edge, **options)
        self._watched.add(line)

    def _release(self, line: Line, output: bool) -> None:
        if line in self._watched:
            self._watched.discard(line)
            self._gpio.remove_event_detect(line)
        self._gpio.cleanup(line)

    def _on_thread_edge(self, channel: int, *_ignored) -> None:
        # RPi.GPIO's thread. Some forks also pass the edge type: it is
        # ignored, the loop reads the level instead.
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._edge_then_recheck, channel)
        except RuntimeError:
            pass  # loop closed: shutting down

    def _edge_then_recheck(self, line: Line) -> None:
        self._edge(line)
        if line in self._watched and self._loop is not None:
            delay_s = self._debounce_ms(line) / 1000 + _RECHECK_MARGIN_S
            self._loop.call_later(delay_s, self._edge, line)

    @staticmethod
    def _channel(line: Line) -> int:
        if not isinstance(line, int):
            raise HalStartError(f"RPi.GPIO lines are BCM numbers, not {line!r}")
        return line

    @staticmethod
    def _call(what: str, function, *args, **kwargs) -> None:
        try:
            function(*args, **kwargs)
        except (RuntimeError, ValueError) as exc:
            hint = ""
            if "edge detection" in str(exc):
                hint = (" (known RPi.GPIO failure on kernels >= 6.6: use [hal] gpio = \"gpiod\" "
                        "or the rpi-lgpio package)")
            raise HalStartError(f"RPi.GPIO cannot {what}: {exc}{hint}") from exc
