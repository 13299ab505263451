"""The external limit input on one GPIO line (any ``GpioBackend``), driven by its edges.

A ripple-control receiver or an energy manager switches a potential-free relay
contact; wired to a GPIO input, its level is the limit's state. The line is
biased towards "inactive", so a cut wire lifts the limit rather than blocking
the charger for good; the limit returns with the next edge of a working wire.
"""

from __future__ import annotations

from hal.drivers.gpio_devices import GpioLines
from hal.events import Emit
from hal.gpio.backend import GpioBackend, Line
from hal.roles.limit_input import ExternalLimit, LimitInput

# Relay contacts bounce for a few milliseconds; a limit that flickers would
# send a NotifyChargingLimit/ClearedChargingLimit pair per bounce.
LIMIT_INPUT_DEBOUNCE_MS = 20
# The [evse.gpio] keys that name a line (the others are polarities and timings).
_EVSE_PIN_KEYS = ("contactor", "contactor_feedback", "lock_a", "lock_b", "lock_feedback", "pilot_plug",
                  "pilot_charge")


class GpioLimitInput(LimitInput):
    """The limit input read from ``line``: active (logically) = the limit applies.

    Edges only: the backend calls back on every change of the debounced
    level, so nothing polls the line. The level present at ``start()`` is
    reported at once (an input already active when the agent starts).
    """

    def __init__(self, *, emit: Emit, limit: ExternalLimit, backend: GpioBackend, line: Line,
                 active_high: bool = True, debounce_ms: int = LIMIT_INPUT_DEBOUNCE_MS) -> None:
        super().__init__(emit=emit, limit=limit)
        self.line = line
        self.active_high = active_high
        self.debounce_ms = debounce_ms
        self._lines = GpioLines(backend)

    async def _start(self) -> None:
        try:
            self._lines.input(self.line, active_high=self.active_high, debounce_ms=self.debounce_ms,
                              on_edge=lambda _line, value: self._set_active(value))
        except BaseException:
            self._lines.release()
            raise
        self._set_active(self._lines.backend.read(self.line))

    async def _stop(self) -> None:
        self._lines.release()

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f" line={self.line}>"


def limit_input_problems(limit_config, evse_configs) -> list[tuple[str, str]]:
    """Problems of a ``[hal.external_limit]`` section on GPIO, as (key, message); empty when buildable.

    ``evse_configs`` are the ``[[evse]]`` tables: the input may not share a
    line with any of their pins.
    """
    line = limit_config.gpio
    if line is None:
        return [("gpio", 'required with hal.backend = "raspberry-pi": the input line of the contact')]
    for i, evse in enumerate(evse_configs):
        for key in _EVSE_PIN_KEYS:
            if getattr(evse.gpio, key) == line:
                return [("gpio", f"line {line!r} is already used by evse[{i}].gpio.{key}")]
    return []

