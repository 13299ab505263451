"""CoreServices, the bundle each protocol adapter gets: every field has a real type (no ``object``), and
the station is typed by the interface the adapters may use."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import typing
from pathlib import Path

from agent.core import services
from agent.core.charging.api import StationApi
from agent.core.services import CoreServices


def field_types() -> dict[str, object]:
    """The resolved annotation of every field, importing for real what the module names for type checkers."""
    namespace = dict(vars(services))
    tree = ast.parse(Path(services.__file__).read_text())
    for block in (node for node in tree.body if isinstance(node, ast.If)):  # the TYPE_CHECKING block
        for statement in block.body:
            if isinstance(statement, ast.ImportFrom):
                module = importlib.import_module(statement.module)
                namespace.update({alias.name: getattr(module, alias.name) for alias in statement.names})
    return typing.get_type_hints(CoreServices, globalns=namespace)


def test_services_every_field_has_a_real_type():
    types = field_types()
    assert set(types) == {field.name for field in dataclasses.fields(CoreServices)}
    assert [name for name, hint in types.items() if hint is object or object in typing.get_args(hint)] == []


def test_services_station_is_typed_by_its_declared_api_and_optional_services_may_be_none():
    types = field_types()
    assert types["station"] is StationApi
    optional = [field.name for field in dataclasses.fields(CoreServices) if field.default is None]
    assert optional and all(type(None) in typing.get_args(types[name]) for name in optional)


def test_services_are_built_with_the_required_fields_only():
    core = CoreServices(station=None, authorizer=None, journal=None, configuration=None, store=None,
                        request_reset=lambda hard: None)
    assert core.firmware is None and core.logs is None and core.station_id == ""
