"""The benchmark registry: ``@benchmark(name, goal=...)`` and discovery of ``bench_*.py``.

A benchmark is a function ``fn(ctx)`` (plain or ``async``) that measures
something and returns its figures: a number, one ``Figure`` or a list of them.
Figures are reported, not asserted; a goal only decides the "met"/"MISSED" text.
"""

from __future__ import annotations

import importlib
import inspect
import operator
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Union

_OPERATORS = {"<": operator.lt, "<=": operator.le, "==": operator.eq, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Goal:
    """A target such as ``< 1 s``: ``value <op> limit``."""

    op: str
    limit: float
    unit: str = ""

    def __post_init__(self):
        if self.op not in _OPERATORS:
            raise ValueError(f"unknown goal operator {self.op!r}; use one of {', '.join(_OPERATORS)}")

    def met(self, value: float) -> bool:
        """True when ``value`` satisfies the goal."""
        return _OPERATORS[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"{self.op} {self.limit:g}{' ' + self.unit if self.unit else ''}"


def below(limit: float, unit: str = "") -> Goal:
    """Goal: strictly less than ``limit`` (the usual shape of a budget)."""
    return Goal("<", limit, unit)


def equal(limit: float, unit: str = "") -> Goal:
    """Goal: exactly ``limit`` (e.g. an exit status of 0)."""
    return Goal("==", limit, unit)


class _Inherit:
    """Marker: the figure takes its benchmark's goal."""

    def __repr__(self) -> str:
        return "INHERIT"


INHERIT: Any = _Inherit()


@dataclass
class Figure:
    """One reported number. ``goal`` defaults to the benchmark's goal; ``None`` = informational."""

    name: str
    value: float
    unit: str = ""
    goal: Goal | None = INHERIT
    note: str = ""


BenchFn = Callable[[Any], Union[float, Figure, list, Awaitable[Any]]]


@dataclass
class Benchmark:
    """A registered benchmark."""

    name: str
    fn: BenchFn
    goal: Goal | None = None
    unit: str = ""
    doc: str = field(default="")

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)


#: Every registered benchmark by name, in registration (= discovery) order.
REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, *, goal: Goal | None = None, unit: str | None = None):
    """Register ``fn`` as benchmark ``name``.

    ``unit`` defaults to the goal's unit; it labels a bare number returned by ``fn``.
    """
    def register(fn: BenchFn) -> BenchFn:
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"benchmark {name!r} is registered twice")
        doc = (inspect.getdoc(fn) or "").split("\n", 1)[0]
        REGISTRY[name] = Benchmark(name, fn, goal, unit if unit is not None else (goal.unit if goal else ""), doc)
        return fn

    return register


def discover(package: str = "tests.bench") -> dict[str, Benchmark]:
    """Import every ``bench_*`` module of ``package`` so their decorators run; return the registry."""
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("bench_"):
            importlib.import_module(f"{package}.{info.name}")
    return REGISTRY


def normalise(bench: Benchmark, returned) -> list[Figure]:
    """Turn what a benchmark returned into figures, each with its resolved goal."""
    if isinstance(returned, (int, float)):
        returned = [Figure(bench.name, float(returned), bench.unit)]
    elif isinstance(returned, Figure):
        returned = [returned]
    figures = list(returned or [])
    for fig in figures:
        if fig.goal is INHERIT:
            fig.goal = bench.goal
    return figures
