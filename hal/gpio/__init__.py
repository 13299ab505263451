"""GPIO backends behind one small interface, chosen by name (gpiozero's pin factories are the model).

``open_backend("rpi-gpio" | "gpiod" | "fake", **options)`` imports only the
chosen backend module, so a desktop without ``RPi.GPIO`` or ``gpiod`` can
import every module of the agent; a missing library is an error when that
backend is opened, never a silent fallback.
"""

from __future__ import annotations

import importlib

from hal.gpio.backend import (
    EdgeCallback, GpioBackend, GpioClosed, GpioError, GpioLibraryMissing, GpioLineError, Line,
    Pull, UnknownGpioBackend,
)

__all__ = [
    "BACKENDS", "EdgeCallback", "GpioBackend", "GpioClosed", "GpioError", "GpioLibraryMissing",
    "GpioLineError", "Line", "Pull", "UnknownGpioBackend", "open_backend",
]

# name -> (module, class); the module is imported only when its name is chosen.
BACKENDS: dict[str, tuple[str, str]] = {
    "rpi-gpio": ("hal.gpio.rpi_gpio", "RpiGpioBackend"),
    "gpiod": ("hal.gpio.gpiod_backend", "GpiodBackend"),
    "fake": ("hal.gpio.fake", "FakeGpioBackend"),
}


def open_backend(name: str, **options) -> GpioBackend:
    """Open the GPIO backend called ``name``; ``options`` go to its constructor.

    Raises UnknownGpioBackend (listing the valid names) for an unknown name,
    GpioLibraryMissing when its library is not installed, HalStartError when
    the hardware cannot be opened.
    """
    try:
        module_name, class_name = BACKENDS[name]
    except (KeyError, TypeError):
        raise UnknownGpioBackend(_unknown_message(name)) from None
    module = importlib.import_module(module_name)
    return getattr(module, class_name)(**options)


def _unknown_message(name: object) -> str:
    message = f"GPIO backend {name!r} is unknown; valid: {', '.join(BACKENDS)}"
    import difflib  # only to suggest a fix for a mistake: the running daemon does not carry it

    close = difflib.get_close_matches(str(name), BACKENDS, n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message
