"""The hal exception tree: one base, leaves that also inherit the matching builtin."""

import inspect

import pytest

import hal.errors as errors
from agent.errors import STATION_ERRORS


@pytest.mark.parametrize("cls, builtin", [
    (errors.InterlockError, PermissionError),
    (errors.LockRefused, PermissionError),
    (errors.MeterReadError, IOError),
    (errors.MeterTimeout, TimeoutError),
    (errors.EnergyWentBackwards, ValueError),
    (errors.HalStartError, OSError),
    (errors.SimulationError, ValueError),
    (errors.ControlUnreachable, ConnectionError),
    (errors.ControlTimeout, TimeoutError),
])
def test_errors_leaf_inherits_hal_error_and_builtin(cls, builtin):
    assert issubclass(cls, errors.HalError)
    assert issubclass(cls, STATION_ERRORS)  # what the agent's catch-alls catch
    assert issubclass(cls, builtin)


def test_errors_hal_imports_nothing_from_agent():
    """The HAL is the bottom layer: its exception root is its own, not agent.errors.AgentError."""
    assert errors.HalError.__mro__[1:] == (Exception, BaseException, object)


def test_errors_meter_leaves_are_meter_read_errors():
    assert issubclass(errors.MeterTimeout, errors.MeterReadError)
    assert issubclass(errors.EnergyWentBackwards, errors.MeterReadError)


def test_errors_every_class_has_a_one_line_docstring():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if c.__module__ == errors.__name__]
    assert classes
    for cls in classes:
        assert cls.__doc__ and "\n" not in cls.__doc__.strip(), cls
