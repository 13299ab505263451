"""What every role shares: the start/stop life cycle and waiting for feedback."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable


class Device:
    """Life cycle of a device: ``start()`` opens it, ``stop()`` releases it.

    Drivers override the ``_start``/``_stop`` hooks. Nothing is opened in
    ``__init__``, so building a device never touches hardware.
    """

    async def start(self) -> None:
        """Open the device (ports, GPIO lines) and bring it to its safe initial state."""
        await self._start()

    async def stop(self) -> None:
        """Release the device. Makes no output change of its own: ``Hal.safe_state`` does that."""
        await self._stop()

    async def _start(self) -> None:
        """Driver hook: open the hardware. The default has nothing to open."""

    async def _stop(self) -> None:
        """Driver hook: release the hardware. The default has nothing to release."""


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, not {value!r}")
    return float(value)


async def wait_until(
    done: Callable[[], bool],
    *,
    timeout_s: float,
    poll_s: float,
    abandon: Callable[[], bool] = lambda: False,
) -> bool:
    """Poll ``done()`` until it is true (return True) or ``timeout_s`` passes (False).

    ``done`` is checked once before any sleep, so instant feedback costs no
    latency. ``abandon()`` true stops the wait early (a newer command took
    over), returning False.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if done():
            return True
        remaining = deadline - loop.time()
        if remaining <= 0 or abandon():
            return False
        await asyncio.sleep(min(poll_s, remaining))
