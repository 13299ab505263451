"""Config rules that span sections: EVSE numbering, the hardware of a real charger, the OCPP setting tables.

They run once every section has been built (``parse_config``), on the values
that passed, and report with full key paths. The GPIO and limit-input rules
are the drivers' own (``hal.drivers``), asked here so a wrong pin is refused
at load time, before anything is opened.
"""

from __future__ import annotations

from agent.config.checks import ConfigProblem, did_you_mean
from agent.config.schema import HalConfig
from agent.runtime.settings import SETTINGS_BY_OCPP16, SETTINGS_BY_OCPP201, coerce_setting
from hal.registry import GPIO_PILOT, METER_DRIVERS, RFID_DRIVERS, needs_mock_backend


def check_across_sections(values: dict) -> list[ConfigProblem]:
    """Rules that span sections: EVSE numbering and the OCPP setting tables."""
    problems = []
    evses = values.get("evse")
    if evses is not None:
        ids = [e.id for e in evses]
        if not ids:
            problems.append(ConfigProblem("evse", "at least one [[evse]] table is required"))
        elif sorted(ids) != list(range(1, len(ids) + 1)):
            problems.append(ConfigProblem("evse", f"EVSE ids must be 1..{len(ids)} without gaps or repeats, got {ids}"))
    hal = values.get("hal", HalConfig())
    if evses and hal.backend == "raspberry-pi":
        problems.extend(_gpio_problems(evses))
        problems.extend(_mock_on_real_hardware(evses, hal))
    if evses and hal.external_limit is not None:
        problems.extend(_external_limit_placement(hal, evses))
    tables = (
        ("ocpp16.configuration", values.get("ocpp16"), "configuration", SETTINGS_BY_OCPP16),
        ("ocpp201.variables", values.get("ocpp201"), "variables", SETTINGS_BY_OCPP201),
    )
    for prefix, section, attribute, known in tables:
        if section is not None:
            problems.extend(_check_ocpp_table(prefix, getattr(section, attribute), known))
    csms, ocpp201 = values.get("csms"), values.get("ocpp201")
    if csms is not None and csms.ocpp_version == "1.6" and ocpp201 is not None:
        for key in ocpp201.variables:
            if key in SETTINGS_BY_OCPP201 and SETTINGS_BY_OCPP201[key].name in _ONLY_201_BEHAVIOUR:
                problems.append(ConfigProblem(f'ocpp201.variables."{key}"',
                                              "changes what a transaction is, which OCPP 1.6 cannot express; "
                                              "remove it or set csms.ocpp_version = \"2.0.1\" or \"2.1\""))
    return problems


# 2.0.1 settings whose behaviour 1.6 messages cannot carry (a transaction without an idTag, ...).
_ONLY_201_BEHAVIOUR = frozenset({"tx_start_point", "tx_stop_point", "master_pass_group_id"})


def _gpio_problems(evses) -> list[ConfigProblem]:
    """Pin assignments the GPIO drivers would refuse, reported at load time with their key paths."""
    from hal.drivers.gpio_devices import gpio_pin_problems

    return [
        ConfigProblem(f"evse[{i}].gpio.{key}", message)
        for i, evse in enumerate(evses)
        for key, message in gpio_pin_problems(evse.gpio, pilot_on_gpio=evse.pilot.driver == GPIO_PILOT)
    ]


def _mock_on_real_hardware(evses, hal: HalConfig) -> list[ConfigProblem]:
    """Mock devices only exist inside the mock backend; never mock a device silently on a real charger."""
    hint = "'mock' needs hal.backend = \"mock\"; name the real driver"
    problems = [ConfigProblem(f"evse[{i}].meter.driver", f"{hint} (e.g. \"modbus\")")
                for i, evse in enumerate(evses) if needs_mock_backend(METER_DRIVERS, evse.meter.driver)]
    if needs_mock_backend(RFID_DRIVERS, hal.rfid.driver):
        problems.append(ConfigProblem("hal.rfid.driver", f"{hint} (e.g. \"rdm6300\")"))
    return problems


def _external_limit_placement(hal: HalConfig, evses) -> list[ConfigProblem]:
    """The limit's EVSE must exist, and on real hardware its input needs a line of its own."""
    problems = []
    limit = hal.external_limit
    if limit.evse and limit.evse not in {e.id for e in evses}:
        problems.append(ConfigProblem("hal.external_limit.evse", f"no [[evse]] with id {limit.evse} "
                                      "(0 applies the limit to every EVSE)"))
    if hal.backend == "raspberry-pi":
        from hal.drivers.gpio_limit_input import limit_input_problems

        problems += [ConfigProblem(f"hal.external_limit.{key}", message)
                     for key, message in limit_input_problems(limit, evses)]
    return problems


# Connection settings the csms section owns; the OCPP names exist for the CSMS to change them.
_CSMS_SECTION_SETTINGS = {"security_profile": "security_profile", "basic_auth_password": "password"}


def _check_ocpp_table(prefix: str, given: dict, known: dict) -> list[ConfigProblem]:
    problems = []
    for key, value in given.items():
        path = f'{prefix}."{key}"' if "." in key else f"{prefix}.{key}"
        if key not in known:
            problems.append(ConfigProblem(path, "unknown setting" + did_you_mean(key, list(known))))
            continue
        if known[key].name in _CSMS_SECTION_SETTINGS:
            problems.append(ConfigProblem(path, f"set csms.{_CSMS_SECTION_SETTINGS[known[key].name]} instead"))
            continue
        try:
            coerce_setting(known[key], value)
        except ValueError as exc:
            problems.append(ConfigProblem(path, str(exc)))
    return problems
