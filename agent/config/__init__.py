"""Configuration: a TOML file parsed into frozen dataclasses before anything is opened.

``load_config`` reads and validates a file and collects every problem with its
key path, so an operator fixes a broken file in one go instead of one error
per restart. The package is split by job:

- ``schema``: the dataclasses (one per TOML section) and each section's own rules;
- ``parsing``: ``load_config``/``parse_config`` and the walk of TOML tables against the schema;
- ``cross_checks``: rules spanning sections (EVSE numbering, real-hardware pins, OCPP setting tables);
- ``checks``: ``ConfigProblem``, ``OneOf`` (choices read from the HAL's tables and data files), hints.
- ``web``: the ``[web]`` section of the dashboard (``ocpp-agent web``) and its listen/exposure rules.
"""

from agent.config.checks import ConfigProblem, OneOf
from agent.config.parsing import load_config, parse_config
from agent.config.web import WebConfig
from agent.config.schema import (
    DEFAULT_CONFIG_PATH, AgentConfig, CsmsConfig, EvseConfig, ExternalLimitConfig, GpioPinsConfig, HalConfig,
    LoggingConfig, MeterConfig, Ocpp16Config, Ocpp201Config, PilotConfig, RfidConfig, StationConfig, SystemConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH", "AgentConfig", "ConfigProblem", "CsmsConfig", "EvseConfig", "ExternalLimitConfig",
    "GpioPinsConfig", "HalConfig", "LoggingConfig", "MeterConfig", "Ocpp16Config", "Ocpp201Config", "OneOf",
    "PilotConfig", "RfidConfig", "StationConfig", "SystemConfig", "WebConfig", "load_config", "parse_config",
]
