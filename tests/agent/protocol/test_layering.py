"""The protocol packages as layers: ``common`` below, the versions beside each other on top of it.

What 1.6 and 2.0.1 share lives in ``agent.protocol.common``, so no version imports another
(a 2.1 package may extend 2.0.1 later; 1.6 and 2.0.1 stand apart) and ``common`` imports no
version. Imports are read from the source (AST), lazy and relative ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests import REPO_ROOT

PROTOCOL = REPO_ROOT / "agent" / "protocol"


def imported_modules(path: Path, *, package: str) -> set[str]:
    """Dotted names of what the module at ``path`` (in ``package``) imports, anywhere in its body."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the module's own package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def arrows(root: Path, *, source: str, target: str) -> list[str]:
    """``module -> name`` for each import of ``agent.protocol.<target>`` from ``agent/protocol/<source>``."""
    found = []
    for path in sorted((root / source).rglob("*.py")):
        module = ".".join(("agent", "protocol", *path.relative_to(root).with_suffix("").parts))
        package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
        forbidden = f"agent.protocol.{target}"
        found += [f"{module} -> {name}" for name in sorted(imported_modules(path, package=package))
                  if name == forbidden or name.startswith(forbidden + ".")]
    return found


def test_layering_16_imports_nothing_of_201():
    assert arrows(PROTOCOL, source="v16", target="v201") == []


def test_layering_201_imports_nothing_of_16():
    assert arrows(PROTOCOL, source="v201", target="v16") == []


def test_layering_common_imports_no_version():
    assert arrows(PROTOCOL, source="common", target="v16") == []
    assert arrows(PROTOCOL, source="common", target="v201") == []


def test_layering_finds_a_version_importing_another_also_relative_and_lazy(tmp_path):
    (tmp_path / "v16").mkdir()
    (tmp_path / "v16" / "diagnostics.py").write_text("from agent.protocol.v201.diagnostics import GetLogHandlers\n")
    (tmp_path / "v16" / "adapter.py").write_text("def f():\n    from ..v201 import codec\n")
    (tmp_path / "v16" / "firmware.py").write_text("import agent.protocol.v201\nimport agent.protocol.v2010\n")
    assert arrows(tmp_path, source="v16", target="v201") == [
        "agent.protocol.v16.adapter -> agent.protocol.v201",
        "agent.protocol.v16.adapter -> agent.protocol.v201.codec",
        "agent.protocol.v16.diagnostics -> agent.protocol.v201.diagnostics",
        "agent.protocol.v16.diagnostics -> agent.protocol.v201.diagnostics.GetLogHandlers",
        "agent.protocol.v16.firmware -> agent.protocol.v201",
    ]
