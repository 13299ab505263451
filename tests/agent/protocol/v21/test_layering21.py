"""The 2.1 package builds on 2.0.1 alone: it imports nothing of 1.6, and nothing imports it but the
version switch (``agent.protocol.adapter_class``). Read from the source (AST), lazy imports included."""

from __future__ import annotations

import ast
from pathlib import Path

from tests import REPO_ROOT

PROTOCOL = REPO_ROOT / "agent" / "protocol"


def imports_of(folder: Path, package: str) -> dict[str, set[str]]:
    """Module name -> every absolute dotted name it imports, for the modules under ``folder``."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base])
                names.add(base)
                names.update(f"{base}.{alias.name}" for alias in node.names)
        found[f"{package}.{path.stem}"] = names
    return found


def arrows(folder: Path, package: str, target: str) -> list[str]:
    return sorted(f"{module} -> {name}" for module, names in imports_of(folder, package).items()
                  for name in names if name == target or name.startswith(target + "."))


def test_layering21_imports_nothing_of_16():
    assert arrows(PROTOCOL / "v21", "agent.protocol.v21", "agent.protocol.v16") == []


def test_layering21_nothing_below_imports_21():
    for below in ("common", "v16", "v201"):
        assert arrows(PROTOCOL / below, f"agent.protocol.{below}", "agent.protocol.v21") == []


def test_layering21_finds_an_arrow_also_relative(tmp_path):
    (tmp_path / "adapter.py").write_text("from ..v16 import codec\nimport agent.protocol.v16.adapter\n")
    assert arrows(tmp_path, "agent.protocol.v21", "agent.protocol.v16") == [
        "agent.protocol.v21.adapter -> agent.protocol.v16",
        "agent.protocol.v21.adapter -> agent.protocol.v16.adapter",
        "agent.protocol.v21.adapter -> agent.protocol.v16.codec",
    ]
