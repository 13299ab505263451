"""Errors of the hardware layer: ``HalError`` and its leaves.

Leaves also inherit the matching builtin, so callers may catch either
(``except TimeoutError`` still catches ``MeterTimeout``). Runtime faults are
not exceptions: they are ``FaultRaised`` events (see ``hal.events``). These
exceptions are for refused commands, failed reads and start-up failures.
"""


class HalError(Exception):
    """Base of every error raised by the hardware layer."""


class HalStartError(HalError, OSError):
    """A device could not be opened or initialised at start-up."""


class InterlockError(HalError, PermissionError):
    """Refused: power not allowed (the contactor may not close now)."""


class LockRefused(HalError, PermissionError):
    """Refused: the connector may not unlock while the contactor is closed."""


class MeterReadError(HalError, IOError):
    """The energy meter could not be read, or its reading failed a sanity check."""


class MeterTimeout(MeterReadError, TimeoutError):
    """The energy meter did not answer within the read timeout."""


class EnergyWentBackwards(MeterReadError, ValueError):
    """The meter's energy register is lower than in the previous accepted reading."""


class MeterStale(MeterReadError):
    """The polled meter has no reading young enough to pass for the present value."""


class SimulationError(HalError, ValueError):
    """A mock-HAL command cannot apply in the simulated state (e.g. EV charge while unplugged)."""


class ControlError(HalError, ConnectionError):
    """Base of mock-HAL control client failures: no usable answer from the agent."""


class ControlUnreachable(ControlError):
    """The control socket is missing or refuses connections: is the agent running?"""


class ControlTimeout(ControlError, TimeoutError):
    """The agent accepted the connection but did not answer in time."""


class ControlProtocolError(ControlError):
    """The agent's answer was not one JSON object on one line."""
