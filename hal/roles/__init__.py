"""Device roles: one abstract base class per role, each enforcing its own contract.

The public methods live here and enforce the invariants; drivers subclass a
role and fill in its private hooks (``_set_output``, ``_read_feedback``, ...).
"""

from hal.roles._device import Device
from hal.roles.contactor import Contactor
from hal.roles.display import Display
from hal.roles.limit_input import ExternalLimit, ExternalLimitChanged, LimitInput
from hal.roles.lock import ConnectorLock
from hal.roles.meter import EnergyMeter, check_reading_sane
from hal.roles.pilot import PilotController
from hal.roles.token_reader import TokenReader, normalise_uid

__all__ = [
    "ConnectorLock",
    "Contactor",
    "Device",
    "Display",
    "EnergyMeter",
    "ExternalLimit",
    "ExternalLimitChanged",
    "LimitInput",
    "PilotController",
    "TokenReader",
    "check_reading_sane",
    "normalise_uid",
]
