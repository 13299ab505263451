"""The architecture as tests: the layers of agent/ and hal/ as an import graph, small modules, and test
modules that stand alone.

Imports are read from the source (AST), at module level and inside functions alike, so a lazy import
cannot hide an arrow between layers. Each rule also runs on a small made-up tree that breaks it, so a
rule that could never fail would show here.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import REPO_ROOT

MAX_LINES = 500
#: A module over MAX_LINES says why in its docstring, in a sentence starting with these words.
LENGTH_REASON = re.compile(r"(?:^|[.!?:]\s+|\n\s*)Longer than 500 lines because\b")

#: Modules allowed over MAX_LINES without a reason in their docstring, each with the length it may not
#: pass. Empty since [structure] split the last ones (config, core/charging/station, device_model/monitoring,
#: link/transport, protocol/common/adapter): a long module says why in its docstring. Never extend it.
TOO_LONG_TODAY: dict[str, int] = {}


# ------------------------------------------------------------------ reading the import graph


@dataclass(frozen=True)
class ImportGraph:
    """The modules under some top-level packages and, for each, the modules it imports.

    An import of one of the graph's own modules is resolved to the deepest module that exists
    (``from agent.core import station`` -> ``agent.core.station``, ``agent.core.x.Name`` ->
    ``agent.core.x``); any other import keeps its dotted name (``ocpp.v16.call``).
    """

    root: Path
    files: dict[str, Path]
    imports: dict[str, frozenset[str]]

    def arrows(self, *, source: str, targets: tuple[str, ...]) -> list[str]:
        """``"importer -> imported"`` for each import from inside ``source`` of anything inside ``targets``."""
        return sorted(f"{module} -> {name}" for module, names in self.imports.items() if inside(module, source)
                      for name in names if any(inside(name, target) for target in targets))


def inside(name: str, package: str) -> bool:
    """Whether dotted ``name`` is ``package`` or lies below it."""
    return name == package or name.startswith(package + ".")


def read_graph(root: Path, packages: tuple[str, ...]) -> ImportGraph:
    """The import graph of every ``.py`` file under ``root/<package>`` for each of ``packages``."""
    files = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    imports = {}
    for module, path in files.items():
        raw = imported_names(ast.parse(path.read_text(), str(path)), module=module,
                             is_package=path.name == "__init__.py")
        imports[module] = frozenset(_resolve(name, files, packages) for name in raw) - {module}
    return ImportGraph(root, files, imports)


def imported_names(tree: ast.AST, *, module: str, is_package: bool) -> set[str]:
    """Every dotted name ``tree`` imports, anywhere in it (``from x import a`` gives ``x.a``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module=module, is_package=is_package)
            # ``a`` may be a submodule or a name defined in ``base``: resolution decides which.
            names.update(f"{base}.{alias.name}" if alias.name != "*" else base for alias in node.names)
    return names


def _absolute(node: ast.ImportFrom, *, module: str, is_package: bool) -> str:
    """The absolute module a (possibly relative) ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    package = package[:len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def _resolve(name: str, files: dict[str, Path], packages: tuple[str, ...]) -> str:
    """``name`` cut back to the deepest module of the graph, or kept whole for other packages."""
    if name.split(".")[0] not in packages:
        return name
    while name not in files and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


# ------------------------------------------------------------------ the rules, as functions of a graph


def import_cycles(graph: ImportGraph) -> list[list[str]]:
    """Each group of modules that import each other in a circle (Tarjan's strongly connected components).

    Importing one's own ancestor package does not count: Python has loaded it before the module runs.
    """
    edges = {module: sorted(name for name in names if name in graph.files and not inside(module, name))
             for module, names in graph.imports.items()}
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for start in edges:
        if start in index:
            continue
        # Iterative depth-first search: (module, its next edge) pairs instead of recursion.
        work = [(start, 0)]
        index[start] = lowest[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, position = work[-1]
            if position < len(edges[module]):
                work[-1] = (module, position + 1)
                target = edges[module][position]
                if target not in index:
                    index[target] = lowest[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, 0))
                elif target in on_stack:
                    lowest[module] = min(lowest[module], index[target])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                lowest[parent] = min(lowest[parent], lowest[module])
            if lowest[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)


def oversized_modules(graph: ImportGraph, *, allowed: dict[str, int] | None = None) -> list[str]:
    """``"path: N lines"`` (path relative to the root) of each module over MAX_LINES whose docstring gives no
    reason, unless ``allowed`` lets that path have N lines."""
    allowed = allowed or {}
    found = []
    for path in graph.files.values():
        text = path.read_text()
        relative, lines = path.relative_to(graph.root).as_posix(), len(text.splitlines())
        if lines <= max(MAX_LINES, allowed.get(relative, 0)):
            continue
        if not LENGTH_REASON.search(ast.get_docstring(ast.parse(text)) or ""):
            found.append(f"{relative}: {lines} lines")
    return sorted(found)


def is_test_module(module: str) -> bool:
    """Whether pytest collects ``module`` as a test module (file ``test_*.py`` or ``*_test.py``)."""
    last = module.rsplit(".", 1)[-1]
    return last.startswith("test_") or last.endswith("_test")


def imports_of_test_modules(graph: ImportGraph) -> list[str]:
    """``"importer -> imported"`` for each module of ``graph`` that imports a test module.

    Helpers shared between tests live in tests/harness and conftest.py files, never in a test module.
    """
    return sorted(f"{module} -> {name}" for module, names in graph.imports.items()
                  for name in names if name in graph.files and is_test_module(name))


# ------------------------------------------------------------------ the rules, on this repository


@pytest.fixture(scope="module")
def code() -> ImportGraph:
    """The import graph of agent/ and hal/."""
    return read_graph(REPO_ROOT, ("agent", "hal"))


def test_architecture_has_no_import_circles(code):
    assert import_cycles(code) == []


def test_architecture_hal_imports_nothing_from_agent(code):
    assert code.arrows(source="hal", targets=("agent",)) == []


def test_architecture_core_imports_no_protocol_and_no_link(code):
    assert code.arrows(source="agent.core", targets=("ocpp", "agent.protocol", "agent.link")) == []


def test_architecture_charging_imports_neither_management_nor_device_model(code):
    targets = ("agent.core.management", "agent.core.device_model")
    assert code.arrows(source="agent.core.charging", targets=targets) == []


def test_architecture_protocol_versions_never_import_each_other(code):
    assert code.arrows(source="agent.protocol.v16", targets=("agent.protocol.v201",)) == []
    assert code.arrows(source="agent.protocol.v201", targets=("agent.protocol.v16",)) == []


def test_architecture_no_module_over_500_lines_without_a_reason(code):
    assert oversized_modules(code, allowed=TOO_LONG_TODAY) == []


def test_architecture_no_test_module_imports_another():
    assert imports_of_test_modules(read_graph(REPO_ROOT, ("tests",))) == []


def test_architecture_the_graph_sees_the_packages_it_checks(code):
    """A guard for the guards: an empty or misread graph would pass every rule above."""
    assert {"agent.core.charging.station", "agent.protocol.v16.adapter", "hal.hardware"} <= set(code.files)
    adapter = code.imports["agent.protocol.v16.adapter"]
    assert any(inside(name, "ocpp") for name in adapter) and any(inside(name, "agent.core") for name in adapter)


# ------------------------------------------------------------------ each rule can fail


def made_up_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (path -> source) under ``root``, with the package ``__init__.py`` files they need."""
    for relative, source in files.items():
        path = root / relative
        for package in path.relative_to(root).parents:
            if package != Path(".") and not (root / package / "__init__.py").exists():
                (root / package).mkdir(parents=True, exist_ok=True)
                (root / package / "__init__.py").write_text("")
        path.write_text(source)
    return root


def test_architecture_finds_a_circle_through_a_function_level_import(tmp_path):
    made_up_tree(tmp_path, {
        "agent/a.py": "from agent import b\n",
        "agent/b.py": "def later():\n    from agent.c import thing\n",
        "agent/c.py": "import agent.a\n",
        "agent/d.py": "import agent.a\n",
    })
    assert import_cycles(read_graph(tmp_path, ("agent", "hal"))) == [["agent.a", "agent.b", "agent.c"]]


def test_architecture_an_import_of_the_own_ancestor_package_is_no_circle(tmp_path):
    made_up_tree(tmp_path, {"agent/core/__init__.py": "from agent.core.station import Station\n",
                            "agent/core/station.py": "import agent.core\nStation = 1\n"})
    assert import_cycles(read_graph(tmp_path, ("agent",))) == []


def test_architecture_finds_forbidden_arrows_also_relative_and_lazy(tmp_path):
    graph = read_graph(made_up_tree(tmp_path, {
        "hal/meter.py": "def fail():\n    from agent.errors import AgentError\n",
        "agent/errors.py": "",
        "agent/core/charging/evse.py": "from ...protocol.v16 import adapter\nfrom ..management import firmware\n",
        "agent/core/management/firmware.py": "import ocpp.v16.call\n",
        "agent/protocol/v16/adapter.py": "from agent.protocol.v201.codec import *\n",
        "agent/protocol/v201/codec.py": "",
        "agent/link/transport.py": "",
    }), ("agent", "hal"))
    assert graph.arrows(source="hal", targets=("agent",)) == ["hal.meter -> agent.errors"]
    assert graph.arrows(source="agent.core", targets=("ocpp", "agent.protocol", "agent.link")) == [
        "agent.core.charging.evse -> agent.protocol.v16.adapter", "agent.core.management.firmware -> ocpp.v16.call"]
    assert graph.arrows(source="agent.core.charging", targets=("agent.core.management",)) == [
        "agent.core.charging.evse -> agent.core.management.firmware"]
    assert graph.arrows(source="agent.protocol.v16", targets=("agent.protocol.v201",)) == [
        "agent.protocol.v16.adapter -> agent.protocol.v201.codec"]


def test_architecture_a_long_module_needs_a_reason_or_a_place_on_the_list(tmp_path):
    body = "x = 1\n" * MAX_LINES
    graph = read_graph(made_up_tree(tmp_path, {
        "agent/short.py": '"""Short."""\n' + "x = 1\n" * (MAX_LINES - 1),
        "agent/long.py": '"""Long."""\n' + body,
        "agent/listed.py": '"""Listed."""\n' + body,
        "agent/grown.py": '"""Listed, and grown since."""\n' + body + "y = 2\n",
        "agent/explained.py": '"""The machine.\n\nLonger than 500 lines because it is one machine."""\n' + body,
        "agent/mentioned.py": '"""It is not longer than 500 lines because of us."""\n' + body,
    }), ("agent",))
    allowed = {"agent/listed.py": MAX_LINES + 1, "agent/grown.py": MAX_LINES + 1}
    assert oversized_modules(graph, allowed=allowed) == [
        "agent/grown.py: 502 lines", "agent/long.py: 501 lines", "agent/mentioned.py: 501 lines"]


def test_architecture_finds_a_test_module_importing_another(tmp_path):
    graph = read_graph(made_up_tree(tmp_path, {
        "tests/harness.py": "CARD = 1\n",
        "tests/e2e/test_a.py": "from tests.harness import CARD\nfrom tests.e2e.test_b import helper\n",
        "tests/e2e/test_b.py": "def helper():\n    from tests.e2e import test_c\n",
        "tests/e2e/test_c.py": "",
        "tests/e2e/conftest.py": "import tests.e2e.test_c\n",
    }), ("tests",))
    assert imports_of_test_modules(graph) == ["tests.e2e.conftest -> tests.e2e.test_c",
                                              "tests.e2e.test_a -> tests.e2e.test_b",
                                              "tests.e2e.test_b -> tests.e2e.test_c"]
