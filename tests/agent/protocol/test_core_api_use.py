"""The protocol adapters use the core only through its declared API.

Of the station, only the members of ``StationApi`` (agent.core.charging.api); of the core bundle, only
the fields of ``CoreServices``; no reaching into EVSE machines (``.evses``) and no ``getattr`` on the
core as if its services were undeclared. Read from the source (AST and text), so code that runs only
in rare paths is checked too; each rule also runs on a made-up module that breaks it.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from agent.core.charging.api import StationApi
from agent.core.services import CoreServices
from tests import REPO_ROOT

PROTOCOL = REPO_ROOT / "agent" / "protocol"

STATION_API = frozenset(name for name in vars(StationApi) if not name.startswith("_"))
SERVICES = frozenset(field.name for field in dataclasses.fields(CoreServices))

#: Text that means an adapter reaches past the API: EVSE machines, or core services looked up by name.
REACH_IN = re.compile(r"\.evses\b|getattr\(\s*(?:self\.)?core\b")


def _is_core(node: ast.AST) -> bool:
    """``self.core`` or a local ``core``: the CoreServices bundle."""
    if isinstance(node, ast.Name):
        return node.id == "core"
    return (isinstance(node, ast.Attribute) and node.attr == "core"
            and isinstance(node.value, ast.Name) and node.value.id == "self")


def _is_station(node: ast.AST, aliases: set[str]) -> bool:
    """``<core>.station``, ``self._station`` (the codecs' station) or a local name bound to one of them."""
    if isinstance(node, ast.Name):
        return node.id in aliases
    if isinstance(node, ast.Attribute) and node.attr == "station":
        return _is_core(node.value)
    return (isinstance(node, ast.Attribute) and node.attr == "_station"
            and isinstance(node.value, ast.Name) and node.value.id == "self")


def undeclared_uses(source: str, *, filename: str = "<module>") -> list[str]:
    """``line: what`` for every station member outside StationApi and core field outside CoreServices."""
    found = []
    for function in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        aliases = {target.id for node in ast.walk(function) if isinstance(node, ast.Assign)
                   and _is_station(node.value, set()) for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(function):
            if not isinstance(node, ast.Attribute):
                continue
            if _is_station(node.value, aliases) and node.attr not in STATION_API:
                found.append(f"{node.lineno}: station.{node.attr}")
            elif _is_core(node.value) and node.attr not in SERVICES:
                found.append(f"{node.lineno}: core.{node.attr}")
    return sorted(set(found))


def reach_ins(source: str) -> list[str]:
    """``line: text`` for every line that reaches into EVSE machines or looks a core service up by name."""
    return [f"{number}: {line.strip()}" for number, line in enumerate(source.splitlines(), start=1)
            if REACH_IN.search(line)]


def _modules() -> list[Path]:
    return sorted(PROTOCOL.rglob("*.py"))


def test_core_api_adapters_use_only_declared_station_members_and_core_fields():
    problems = {}
    for path in _modules():
        uses = undeclared_uses(path.read_text(), filename=str(path))
        if uses:
            problems[str(path.relative_to(REPO_ROOT))] = uses
    assert problems == {}


def test_core_api_adapters_do_not_reach_into_evses_or_getattr_the_core():
    problems = {str(path.relative_to(REPO_ROOT)): found for path in _modules() if (found := reach_ins(path.read_text()))}
    assert problems == {}


def test_core_api_rules_catch_a_module_that_breaks_them():
    module = '''
class Handlers:
    def on_x(self, evse_id):
        station = self.core.station
        busy = station.evses[evse_id].transaction is not None
        station.remote_start("A", evse_id=evse_id)
        faults = self.core.station.station_faults
        job = getattr(self.core, "firmware", None)
        return self.core.secret_service, self._station.port, self.station.vendor

    def on_y(self, core):
        return core.station.statuses, core.firmware
'''
    assert undeclared_uses(module) == ["12: station.statuses", "5: station.evses", "7: station.station_faults",
                                       "9: core.secret_service", "9: station.port"]
    assert reach_ins(module) == ["5: busy = station.evses[evse_id].transaction is not None",
                                 '8: job = getattr(self.core, "firmware", None)']
