"""Maps the configured backend and driver names to modules, importing only the chosen ones.

``hal.backend`` picks the driver family; any device table may name its own
``driver``, so a desktop with a USB RS-485 adapter can run a real meter beside
the mock GPIO. The agent never falls back to the mock silently: a name that is
not available is an error that lists what is.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from hal.hardware import EvseHardware, Hal
from hal.errors import HalError

log = logging.getLogger(__name__)

BACKENDS = ("mock", "raspberry-pi")
METER_DRIVERS = ("mock", "modbus")
RFID_DRIVERS = ("mock", "rdm6300", "ascii-line", "pn532-uart")
DISPLAY_DRIVERS = ("none", "console")


class UnknownDriver(HalError, LookupError):
    """The configured backend or driver name is not one we have."""


async def build_hal(config, *, emit: Callable) -> Hal:
    """Build the HAL for ``config`` (an AgentConfig); devices deliver events through ``emit``.

    Nothing is opened here except what a backend must open to exist (a GPIO
    chip); devices touch their hardware in ``Hal.start()``.
    """
    backend = config.hal.backend
    if backend == "mock":
        return await _build_mock(config, emit)
    if backend == "raspberry-pi":
        return await _build_raspberry_pi(config, emit)
    raise UnknownDriver(f"hal.backend {backend!r} is unknown; valid: {', '.join(BACKENDS)}")


async def _build_mock(config, emit: Callable) -> Hal:
    from hal.mock.hardware import MockHal

    hal = MockHal(
        evse_ids=[e.id for e in config.evse],
        data_dir=Path(config.station.data_dir),
        emit=emit,
        max_current_A={e.id: e.max_current_A for e in config.evse},
        phases={e.id: e.phases for e in config.evse},
        external_limit=external_limit(config.hal.external_limit),
    )
    closers = []
    for evse in config.evse:
        if evse.meter.driver != "mock":
            meter, closer = await build_meter(evse, emit)
            hal.evses[evse.id] = _replace_meter(hal.evses[evse.id], meter)
            closers.append(closer)
    if config.hal.rfid.driver != "mock":
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
            pilot_on_gpio = evse.pilot.driver == "gpio"
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
    driver = evse.meter.driver
    if driver == "modbus":
        from hal.drivers.modbus_meter import close_all_buses, open_meter

        m = evse.meter
        meter = await open_meter(evse.id, emit=emit, model=m.model, port=m.port, device_id=m.device_id,
                                 baudrate=m.baudrate, timeout_s=m.timeout_s, parity=m.parity, stopbits=m.stopbits)
        return meter, close_all_buses
    if driver == "mock":
        raise UnknownDriver(
            f"evse {evse.id}: meter driver 'mock' needs hal.backend = 'mock'; "
            f"valid with real hardware: {', '.join(d for d in METER_DRIVERS if d != 'mock')}"
        )
    raise UnknownDriver(f"evse {evse.id}: meter driver {driver!r} is unknown; valid: {', '.join(METER_DRIVERS)}")


async def build_pilot(evse, emit: Callable):
    """A Modbus EVSE controller as the pilot of one ``[[evse]]``, and the closer of its (shared) bus."""
    from hal.drivers.modbus_meter import close_all_buses
    from hal.drivers.modbus_pilot import open_pilot

    p = evse.pilot
    pilot = await open_pilot(evse.id, emit=emit, model=p.model, port=p.port, device_id=p.device_id,
                             baudrate=p.baudrate, parity=p.parity, stopbits=p.stopbits,
                             max_current_A=evse.max_current_A, poll_interval_s=p.poll_interval_s,
                             timeout_s=p.timeout_s)
    return pilot, close_all_buses


def external_limit(section):
    """The ``ExternalLimit`` of a ``[hal.external_limit]`` section, or None when the section is absent."""
    if section is None:
        return None
    from hal.roles import ExternalLimit

    return ExternalLimit(limit_A=section.limit_A, source=section.source, grid_critical=section.grid_critical,
                         evse_id=section.evse or None)


def build_token_reader(rfid, emit: Callable):
    if rfid.driver == "mock":
        raise UnknownDriver("hal.rfid.driver 'mock' needs hal.backend = 'mock'; "
                            f"valid with real hardware: {', '.join(RFID_DRIVERS[1:])}")
    if rfid.driver not in RFID_DRIVERS:
        raise UnknownDriver(f"hal.rfid.driver {rfid.driver!r} is unknown; valid: {', '.join(RFID_DRIVERS)}")
    from hal.drivers.serial_rfid import SerialTokenReader

    return SerialTokenReader(emit=emit, protocol=rfid.driver, port=rfid.port, baudrate=rfid.baudrate)


def build_display(driver: str, *, mock: bool = False):
    """The display named by ``hal.display``: None for "none", the console driver for "console"."""
    if driver == "none" and mock:
        raise UnknownDriver("hal.display 'none' needs hal.backend = 'raspberry-pi': "
                            "the mock always simulates a display")
    if driver == "none":
        return None
    if driver == "console":
        from hal.drivers.console_display import ConsoleDisplay

        return ConsoleDisplay()
    raise UnknownDriver(f"hal.display {driver!r} is unknown; valid: {', '.join(DISPLAY_DRIVERS)}")


def _replace_meter(hardware: EvseHardware, meter) -> EvseHardware:
    from dataclasses import replace

    return replace(hardware, meter=meter)
