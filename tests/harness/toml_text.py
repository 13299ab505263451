"""TOML text for the agent configs the tests write (the agent reads TOML; Python's standard library only reads it)."""

from __future__ import annotations

import json
from pathlib import Path


def toml_value(value) -> str:
    """A Python scalar or list as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def write_toml(path: Path, sections: dict) -> Path:
    """Write ``{"section": {key: value}, "evse": [{...}, ...]}`` as TOML (lists of tables as ``[[name]]``)."""
    lines: list[str] = []
    for name, body in sections.items():
        tables = body if isinstance(body, list) else [body]
        for table in tables:
            lines.append(f"[[{name}]]" if isinstance(body, list) else f"[{name}]")
            scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
            lines += [f"{json.dumps(key)} = {toml_value(value)}" for key, value in scalars.items()]
            for sub, inner in ((k, v) for k, v in table.items() if isinstance(v, dict)):
                lines.append(f"[{name}.{sub}]")
                lines += [f"{json.dumps(key)} = {toml_value(value)}" for key, value in inner.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
