"""Maps the configured backend and driver names to modules, importing only the chosen ones.

``hal.backend`` picks the driver family; any device table may name its own
``driver``, so a desktop with a USB RS-485 adapter can run a real meter beside
the mock GPIO. The agent never falls back to the mock silently: a name that is
not available is an error that lists what is.

Each kind of device has one table here (python-can's ``BACKENDS`` is the
model): the registry builds from it and the config accepts exactly its keys,
so a driver is added in one place. Meter and EVSE-controller *models* are not
listed anywhere: they are the register-map files (``hal.meters``, ``hal.pilots``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hal import gpio as _gpio
from hal.errors import HalError
from hal.hardware import EvseHardware, Hal
from hal.rfid import PROTOCOLS as SERIAL_RFID_PROTOCOLS

log = logging.getLogger(__name__)

MOCK = "mock"
# The pilot read from GPIO inputs: built with its EVSE's contactor and lock, on the same GPIO chip.
GPIO_PILOT = "gpio"


@dataclass(frozen=True)
class DriverRef:
    """Where a driver lives, as ``"module:attribute"``; the module is imported only when it is built.

    ``options`` are fixed keyword arguments of the factory (the protocol of a
    serial reader). ``closer`` names the callable that releases what drivers of
    this kind share (a Modbus line). ``mock_backend_only`` marks a mock device:
    it exists only inside the mock backend, which builds it itself.
    """

    factory: str
    options: Mapping[str, Any] = field(default_factory=dict)
    closer: str | None = None
    mock_backend_only: bool = False

    def load(self) -> Callable:
        """Import the driver's module and return its factory (a class or an async opener)."""
        return _resolve(self.factory)

    def load_closer(self) -> Callable | None:
        """Import and return the closer, or None when the driver shares nothing."""
        return None if self.closer is None else _resolve(self.closer)


def _resolve(target: str) -> Callable:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


# Both Modbus drivers share one bus per serial port; this releases every bus at once.
_CLOSE_MODBUS_BUSES = "hal.drivers.modbus_meter:close_all_buses"

METER_DRIVERS: dict[str, DriverRef] = {
    MOCK: DriverRef("hal.mock.devices:MockEnergyMeter", mock_backend_only=True),
    "modbus": DriverRef("hal.drivers.modbus_meter:open_meter", closer=_CLOSE_MODBUS_BUSES),
}
PILOT_DRIVERS: dict[str, DriverRef] = {
    GPIO_PILOT: DriverRef("hal.drivers.gpio_devices:GpioPilot"),  # built by build_gpio_evse, not build_pilot
    "modbus-evse": DriverRef("hal.drivers.modbus_pilot:open_pilot", closer=_CLOSE_MODBUS_BUSES),
}
# One serial driver speaks every reader protocol that has a frame parser in hal.rfid.
RFID_DRIVERS: dict[str, DriverRef] = {
    MOCK: DriverRef("hal.mock.devices:MockTokenReader", mock_backend_only=True),
    **{protocol: DriverRef("hal.drivers.serial_rfid:SerialTokenReader", options={"protocol": protocol})
       for protocol in SERIAL_RFID_PROTOCOLS},
}
# None: the station has no display. The mock backend always simulates one.
DISPLAY_DRIVERS: dict[str, DriverRef | None] = {
    "none": None,
    "console": DriverRef("hal.drivers.console_display:ConsoleDisplay"),
}
# The GPIO backends a config file may name ("fake" is the tests' in-memory one); hal.gpio opens them.
GPIO_BACKENDS: tuple[str, ...] = tuple(name for name in _gpio.BACKENDS if name != "fake")


class UnknownDriver(HalError, LookupError):
    """The configured backend or driver name is not one we have."""


def real_driver(table: Mapping[str, DriverRef], name: str, *, what: str) -> DriverRef:
    """The entry of ``name`` in ``table``; UnknownDriver (listing the valid names) for an unknown or mock one.

    ``what`` names the setting in the message ("hal.rfid.driver", "evse 1: meter driver").
    """
    entry = table.get(name)
    if entry is None:
        raise UnknownDriver(f"{what} {name!r} is unknown; valid: {', '.join(table)}")
    if entry.mock_backend_only:
        real = (key for key, ref in table.items() if not ref.mock_backend_only)
        raise UnknownDriver(f"{what} {name!r} needs hal.backend = 'mock'; valid with real hardware: {', '.join(real)}")
    return entry


def needs_mock_backend(table: Mapping[str, DriverRef], name: str) -> bool:
    """True for a mock device the mock backend builds itself (an unknown name is left to ``real_driver``)."""
    entry = table.get(name)
    return entry is not None and entry.mock_backend_only


async def build_hal(config, *, emit: Callable) -> Hal:
    """Build the HAL for ``config`` (an AgentConfig); devices deliver events through ``emit``.

    Nothing is opened here except what a backend must open to exist (a GPIO
    chip); devices touch their hardware in ``Hal.start()``.
    """
    backend = config.hal.backend
    try:
        build = BACKENDS[backend]
    except KeyError:
        raise UnknownDriver(f"hal.backend {backend!r} is unknown; valid: {', '.join(BACKENDS)}") from None
    return await build(config, emit)


async def _build_mock(config, emit: Callable) -> Hal:
    from hal.mock.hardware import MockHal

    hal = MockHal(
        evse_ids=[e.id for e in config.evse],
        data_dir=Path(config.station.data_dir),
        emit=emit,
        max_current_A={e.id: e.max_current_A for e in config.evse},
        phases={e.id: e.phases for e in config.evse},
        external_limit=external_limit(config.hal.external_limit),
        meter_poll_interval_s={e.id: e.meter.poll_interval_s for e in config.evse},
    )
    closers = []
    for evse in config.evse:
        if not needs_mock_backend(METER_DRIVERS, evse.meter.driver):
            meter, closer = await build_meter(evse, emit)
            hal.evses[evse.id] = _replace_meter(hal.evses[evse.id], meter)
            closers.append(closer)
    if not needs_mock_backend(RFID_DRIVERS, config.hal.rfid.driver):
        hal.token_reader = build_token_reader(config.hal.rfid, emit)
    if config.hal.display is not None:  # unset: the mock's simulated display
        hal.display = build_display(config.hal.display, mock=True)
    for closer in dict.fromkeys(closers):
        hal.add_closer(closer)
    return hal


async def _build_raspberry_pi(config, emit: Callable) -> Hal:
    from hal.drivers.gpio_devices import build_gpio_evse
    from hal.gpio import open_backend

    options = {"chip": config.hal.gpiod_chip} if config.hal.gpio == "gpiod" else {}
    gpio = open_backend(config.hal.gpio, **options)
    closers: list[Callable] = []
    try:
        evses = []
        for evse in config.evse:
            pilot_on_gpio = evse.pilot.driver == GPIO_PILOT
            contactor, lock, pilot = build_gpio_evse(evse.id, evse.gpio, backend=gpio, emit=emit,
                                                     max_current_A=evse.max_current_A, pilot_on_gpio=pilot_on_gpio)
            if not pilot_on_gpio:
                pilot, closer = await build_pilot(evse, emit)
                closers.append(closer)
            meter, closer = await build_meter(evse, emit)
            closers.append(closer)
            evses.append(EvseHardware(evse.id, contactor, lock, meter, pilot))
        reader = build_token_reader(config.hal.rfid, emit)
        display = build_display(config.hal.display or "none")
        limit_input = None
        if config.hal.external_limit is not None:
            from hal.drivers.gpio_limit_input import GpioLimitInput

            section = config.hal.external_limit
            limit_input = GpioLimitInput(emit=emit, limit=external_limit(section), backend=gpio,
                                         line=section.gpio, active_high=section.active_high)
    except Exception:
        gpio.close()
        raise
    return Hal(evses=evses, token_reader=reader, limit_input=limit_input, display=display,
               closers=[*dict.fromkeys(closers), gpio.close])


async def build_meter(evse, emit: Callable):
    """The real meter of one ``[[evse]]`` table and the callable that releases the bus it shares."""
    m = evse.meter
    driver = real_driver(METER_DRIVERS, m.driver, what=f"evse {evse.id}: meter driver")
    meter = await driver.load()(evse.id, emit=emit, model=m.model, port=m.port, device_id=m.device_id,
                                baudrate=m.baudrate, timeout_s=m.timeout_s, parity=m.parity, stopbits=m.stopbits,
                                poll_interval_s=m.poll_interval_s, **driver.options)
    return meter, driver.load_closer()


async def build_pilot(evse, emit: Callable):
    """A Modbus EVSE controller as the pilot of one ``[[evse]]``, and the closer of its (shared) bus.

    A "gpio" pilot is not built here but with its EVSE's other GPIO devices.
    """
    p = evse.pilot
    driver = real_driver(PILOT_DRIVERS, p.driver, what=f"evse {evse.id}: pilot driver")
    pilot = await driver.load()(evse.id, emit=emit, model=p.model, port=p.port, device_id=p.device_id,
                                baudrate=p.baudrate, parity=p.parity, stopbits=p.stopbits,
                                max_current_A=evse.max_current_A, poll_interval_s=p.poll_interval_s,
                                timeout_s=p.timeout_s, **driver.options)
    return pilot, driver.load_closer()


def external_limit(section):
    """The ``ExternalLimit`` of a ``[hal.external_limit]`` section, or None when the section is absent."""
    if section is None:
        return None
    from hal.roles import ExternalLimit

    return ExternalLimit(limit_A=section.limit_A, source=section.source, grid_critical=section.grid_critical,
                         evse_id=section.evse or None)


def build_token_reader(rfid, emit: Callable):
    """The real RFID reader of ``[hal.rfid]``; UnknownDriver for "mock" or a name not in ``RFID_DRIVERS``."""
    driver = real_driver(RFID_DRIVERS, rfid.driver, what="hal.rfid.driver")
    return driver.load()(emit=emit, port=rfid.port, baudrate=rfid.baudrate, **driver.options)


def build_display(driver: str, *, mock: bool = False):
    """The display named by ``hal.display``: None for "none", the console driver for "console"."""
    if driver == "none" and mock:
        raise UnknownDriver("hal.display 'none' needs hal.backend = 'raspberry-pi': "
                            "the mock always simulates a display")
    if driver not in DISPLAY_DRIVERS:
        raise UnknownDriver(f"hal.display {driver!r} is unknown; valid: {', '.join(DISPLAY_DRIVERS)}")
    entry = DISPLAY_DRIVERS[driver]
    return None if entry is None else entry.load()(**entry.options)


def _replace_meter(hardware: EvseHardware, meter) -> EvseHardware:
    from dataclasses import replace

    return replace(hardware, meter=meter)


# hal.backend -> the function that assembles the station (each imports its drivers when called).
BACKENDS: dict[str, Callable] = {MOCK: _build_mock, "raspberry-pi": _build_raspberry_pi}
