"""Plain data of the OCPP 2.0.1 device model: enumerations, results, characteristics, report items.

Enumeration values are spelled exactly as OCPP 2.0.1 spells them, so the
protocol adapter passes them through unchanged. Dictionaries use the
snake_case field names of the ``ocpp`` library's 2.0.1 datatypes (the adapter
turns them into camelCase on the wire), but this package never imports it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class GetVariableStatus(str, enum.Enum):
    """The outcome of reading one variable (2.0.1 GetVariableStatusEnumType)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"


class SetVariableStatus(str, enum.Enum):
    """The outcome of writing one variable (2.0.1 SetVariableStatusEnumType)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
    REBOOT_REQUIRED = "RebootRequired"


class AttributeType(str, enum.Enum):
    """Which value of a variable is meant (2.0.1 AttributeEnumType); this station has only Actual."""

    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


class Mutability(str, enum.Enum):
    """Who may read and write a variable (2.0.1 MutabilityEnumType)."""

    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


class DataType(str, enum.Enum):
    """The type of a variable's value (2.0.1 DataEnumType)."""

    STRING = "string"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATE_TIME = "dateTime"
    BOOLEAN = "boolean"
    OPTION_LIST = "OptionList"
    SEQUENCE_LIST = "SequenceList"
    MEMBER_LIST = "MemberList"


LIST_TYPES = (DataType.OPTION_LIST, DataType.SEQUENCE_LIST, DataType.MEMBER_LIST)


class ReportBase(str, enum.Enum):
    """The predefined reports of GetBaseReport (2.0.1 ReportBaseEnumType)."""

    CONFIGURATION_INVENTORY = "ConfigurationInventory"
    FULL_INVENTORY = "FullInventory"
    SUMMARY_INVENTORY = "SummaryInventory"


class ComponentCriterion(str, enum.Enum):
    """Component filters of GetReport (2.0.1 ComponentCriterionEnumType); each names a boolean variable."""

    ACTIVE = "Active"
    AVAILABLE = "Available"
    ENABLED = "Enabled"
    PROBLEM = "Problem"


@dataclass(frozen=True)
class Characteristics:
    """Fixed properties of a variable (2.0.1 VariableCharacteristicsType).

    For a string, ``min_limit``/``max_limit`` bound its length; for the list
    types ``values_list`` holds the allowed members.
    """

    data_type: DataType
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] | None = None
    supports_monitoring: bool = False  # agent.core.device_model.monitoring watches it

    def as_dict(self) -> dict[str, Any]:
        """The characteristics as a report dict; absent optional fields are left out."""
        out: dict[str, Any] = {"data_type": self.data_type.value, "supports_monitoring": self.supports_monitoring}
        for key in ("unit", "min_limit", "max_limit"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.values_list is not None:
            out["values_list"] = ",".join(self.values_list)
        return out


@dataclass(frozen=True, order=True)
class ComponentId:
    """A component instance: its name and, for EVSE and Connector, where it sits."""

    name: str
    evse_id: int | None = None
    connector_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The 2.0.1 ComponentType as a dict."""
        out: dict[str, Any] = {"name": self.name}
        if self.evse_id is not None:
            out["evse"] = {"id": self.evse_id}
            if self.connector_id is not None:
                out["evse"]["connector_id"] = self.connector_id
        return out


@dataclass(frozen=True)
class GetResult:
    """The answer to one GetVariableData; ``value`` is set only when Accepted."""

    status: GetVariableStatus
    value: str | None = None
    reason: str | None = None  # for statusInfo.additionalInfo; never holds a secret


@dataclass(frozen=True)
class SetResult:
    """The answer to one SetVariableData."""

    status: SetVariableStatus
    reason: str | None = None  # for statusInfo.additionalInfo; never holds a secret


@dataclass(frozen=True)
class ReportItem:
    """One 2.0.1 ReportDataType: a variable of a component, its attributes and characteristics."""

    component: dict[str, Any]
    variable: dict[str, Any]
    attributes: list[dict[str, Any]] = field(default_factory=list)
    characteristics: dict[str, Any] | None = None

    def as_report_data(self) -> dict[str, Any]:
        """The item under the ReportDataType field names (``variable_attribute``, ``variable_characteristics``)."""
        out = {"component": self.component, "variable": self.variable, "variable_attribute": self.attributes}
        if self.characteristics is not None:
            out["variable_characteristics"] = self.characteristics
        return out


def variable_key(component: str, variable: str, *, evse_id: int | None = None, connector_id: int | None = None,
                 variable_instance: str | None = None) -> str:
    """The key of a variable in ``DeviceModel(computed=...)``.

    "Component.Variable", with the EVSE in brackets after the component
    ("EVSE[1].Power", "Connector[1,1].ConnectorType") and the variable
    instance in brackets after the variable ("DeviceDataCtrlr.ItemsPerMessage[GetReport]").
    """
    where = ""
    if evse_id is not None:
        where = f"[{evse_id}]" if connector_id is None else f"[{evse_id},{connector_id}]"
    instance = f"[{variable_instance}]" if variable_instance is not None else ""
    return f"{component}{where}.{variable}{instance}"
