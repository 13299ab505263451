"""Maps the configured backend and driver names to modules, importing only the chosen one.

The agent never falls back to the mock silently: a name that is not available
is an error that lists what is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hal.errors import HalError

BACKENDS = ("mock", "raspberry-pi")


class UnknownDriver(HalError, LookupError):
    """The configured backend or driver name is not one we have."""


def build_hal(config, *, emit: Callable) -> object:
    """Build the HAL for ``config`` (an AgentConfig); devices deliver events through ``emit``."""
    backend = config.hal.backend
    if backend == "mock":
        _refuse_real_drivers(config)
        from hal.mock import MockHal

        return MockHal(
            evse_ids=[e.id for e in config.evse],
            data_dir=Path(config.station.data_dir),
            emit=emit,
            max_current_A={e.id: e.max_current_A for e in config.evse},
            phases={e.id: e.phases for e in config.evse},
        )
    if backend == "raspberry-pi":
        raise UnknownDriver(
            "hal.backend 'raspberry-pi': the GPIO, Modbus and serial drivers are not built yet; "
            "available now: 'mock'"
        )
    raise UnknownDriver(f"hal.backend {backend!r} is unknown; valid: {', '.join(BACKENDS)}")


def _refuse_real_drivers(config) -> None:
    """A real meter or reader named beside the mock backend must not be silently mocked."""
    for evse in config.evse:
        if evse.meter.driver != "mock":
            raise UnknownDriver(f"evse {evse.id} meter driver {evse.meter.driver!r} is not available yet; valid: 'mock'")
    if config.hal.rfid.driver != "mock":
        raise UnknownDriver(f"hal.rfid.driver {config.hal.rfid.driver!r} is not available yet; valid: 'mock'")
