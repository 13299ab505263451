"""Reading a config file: TOML tables walked against the schema dataclasses, every problem collected.

``_build_values`` checks each key of a table against the fields of a
dataclass, ``_convert`` each value against its annotation (``Literal``
choices, ``Annotated[str, OneOf(...)]`` choices read from the HAL's tables
and data files, tuples, nested sections). A key that fails keeps its default,
so the cross-key rules still run and one report shows everything.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from agent.config.checks import ConfigProblem, OneOf, did_you_mean
from agent.config.cross_checks import check_across_sections
from agent.config.schema import AgentConfig
from agent.errors import ConfigError


def load_config(path: str | os.PathLike) -> AgentConfig:
    """Read and validate a config file; raise ConfigError listing every problem."""
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("", f"config file not found: {path}")]) from None
    except PermissionError:
        raise ConfigError([ConfigProblem("", f"config file not readable: {path}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"{path}: not valid TOML: {exc}")]) from None
    return parse_config(raw, source=str(path))


def parse_config(raw: dict, *, source: str = "") -> AgentConfig:
    """Validate an already-parsed TOML document; raise ConfigError listing every problem."""
    problems: list[ConfigProblem] = []
    values = _build_values(AgentConfig, raw, "", problems, skip={"source"})
    problems.extend(check_across_sections(values))
    if problems:
        raise ConfigError(problems)
    return AgentConfig(**values, source=source)


def _build_values(cls, table: Any, path: str, problems: list[ConfigProblem], *, skip=()) -> dict:
    """Convert the keys of ``table`` that fit ``cls``'s fields; append a problem for each that does not."""
    if not isinstance(table, dict):
        problems.append(ConfigProblem(path, f"expected a table, got {_kind(table)}"))
        return {}
    hints = typing.get_type_hints(cls, include_extras=True)
    known = [f.name for f in fields(cls) if f.name not in skip]
    for key in table:
        if key not in known:
            problems.append(ConfigProblem(_join(path, key), "unknown key" + did_you_mean(key, known)))
    values = {}
    for name in known:
        key_path = _join(path, name)
        if name not in table:
            if _is_required(cls, name):
                problems.append(ConfigProblem(key_path, "required key is missing"))
            continue
        before = len(problems)
        value = _convert(hints[name], table[name], key_path, problems)
        if len(problems) == before:
            values[name] = value
    return values


def _is_required(cls, name: str) -> bool:
    f = cls.__dataclass_fields__[name]
    return f.default is MISSING and f.default_factory is MISSING


def _build(cls, table: Any, path: str, problems: list[ConfigProblem]):
    """Build dataclass ``cls`` from ``table`` and run its own checks; None if a required key failed.

    Keys that failed keep their defaults, so the object's cross-key checks still
    run and the operator sees those problems in the same report.
    """
    values = _build_values(cls, table, path, problems)
    if any(_is_required(cls, f.name) and f.name not in values for f in fields(cls)):
        return None
    instance = cls(**values)
    check = getattr(instance, "problems", None)
    if check is not None:
        problems.extend(ConfigProblem(_join(path, key), message) for key, message in check())
    return instance


def _convert(hint, value: Any, path: str, problems: list[ConfigProblem]):
    """Check ``value`` against annotation ``hint``; convert where TOML needs it."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        choice = next((extra for extra in extras if isinstance(extra, OneOf)), None)
        if choice is None:
            return _convert(base, value, path, problems)
        message = choice.problem(value)
        if message is None:
            return value
        problems.append(ConfigProblem(path, message))
        return None
    if origin in (typing.Union, types.UnionType):
        # "int | None": None is only a default, TOML has no null; check the other type.
        inner = [a for a in typing.get_args(hint) if a is not type(None)][0]
        return _convert(inner, value, path, problems)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return value
        shown = ", ".join(repr(a) for a in allowed)
        problems.append(ConfigProblem(path, f"expected one of {shown}, got {value!r}"))
        return None
    if origin is tuple:
        item_type = typing.get_args(hint)[0]
        if not isinstance(value, list):
            problems.append(ConfigProblem(path, f"expected an array, got {_kind(value)}"))
            return None
        items = (_convert(item_type, item, f"{path}[{i}]", problems) for i, item in enumerate(value))
        return tuple(item for item in items if item is not None)
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(ConfigProblem(path, f"expected a table, got {_kind(value)}"))
            return None
        return dict(value)
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return _build(hint, value, path, problems)
    return _convert_scalar(hint, value, path, problems)


def _convert_scalar(hint, value: Any, path: str, problems: list[ConfigProblem]):
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint in (str, int, bool) and type(value) is hint:
        return value
    expected = {str: "a string", int: "an integer", float: "a number", bool: "true or false", Path: "a path string"}
    problems.append(ConfigProblem(path, f"expected {expected.get(hint, hint)}, got {_kind(value)} {value!r}"))
    return None


def _kind(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
