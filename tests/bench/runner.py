"""Run registered benchmarks and present their figures (table and JSON).

The runner never fails on a missed goal: figures are information for a human.
It only records an error when a benchmark could not produce figures at all.
"""

from __future__ import annotations

import asyncio
import json
import platform
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from tests.bench.registry import Benchmark, Figure, discover, normalise


@dataclass(frozen=True)
class BenchSettings:
    """How long the measurements take. The defaults are the full measurement."""

    idle_s: float = 60.0      # idle window for RSS and CPU
    boot_repeats: int = 5     # start -> BootNotification repetitions
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> "BenchSettings":
        """Short enough for a developer's inner loop (under a minute in total)."""
        return cls(idle_s=10.0, boot_repeats=5, quick=True)


class BenchContext:
    """What a benchmark receives: the settings and a cache for measurements shared between benchmarks."""

    def __init__(self, settings: BenchSettings):
        self.settings = settings
        self._shared: dict[str, Any] = {}

    async def shared(self, key: str, measure: Callable[["BenchContext"], Awaitable[Any]]) -> Any:
        """Run ``measure(self)`` once per run and hand its result to every benchmark that asks.

        Several figures come from one expensive run (e.g. RSS and CPU of the same idle
        minute); the result is plain data, so it survives the per-benchmark event loop.
        A failure is cached too, so the second benchmark does not repeat a broken minute.
        """
        if key not in self._shared:
            try:
                self._shared[key] = (True, await measure(self))
            except Exception as exc:  # re-raised below for every benchmark that asked
                self._shared[key] = (False, exc)
        ok, value = self._shared[key]
        if not ok:
            raise value
        return value


@dataclass
class Outcome:
    """The result of one benchmark: its figures, or why it could not run."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    error: str = ""       # one line: why it could not run ("" when it ran)
    trace: str = ""       # the traceback, for the developer
    seconds: float = 0.0


def select(registry: dict[str, Benchmark], only: list[str] | None) -> list[Benchmark]:
    """The benchmarks to run; unknown names are an error (a typo should not silently run nothing)."""
    if not only:
        return list(registry.values())
    unknown = [name for name in only if name not in registry]
    if unknown:
        raise KeyError(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(registry)}")
    return [registry[name] for name in only]


def run_one(bench: Benchmark, ctx: BenchContext) -> Outcome:
    """Run one benchmark in its own event loop, so a leaked task cannot skew the next one."""
    started = time.perf_counter()
    try:
        returned = asyncio.run(bench.fn(ctx)) if bench.is_async else bench.fn(ctx)
        outcome = Outcome(bench.name, normalise(bench, returned))
    except Exception as exc:
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
        outcome = Outcome(bench.name, error=detail[0] if detail else type(exc).__name__,
                          trace=traceback.format_exc())
    outcome.seconds = time.perf_counter() - started
    return outcome


def run_benchmarks(settings: BenchSettings | None = None, *, only: list[str] | None = None,
                   progress: Callable[[str], None] | None = None) -> list[Outcome]:
    """Discover, select and run benchmarks in order; the Python API behind ``python -m tests.bench``."""
    settings = settings or BenchSettings()
    ctx = BenchContext(settings)
    outcomes = []
    for bench in select(discover(), only):
        if progress:
            progress(f"running {bench.name} ...")
        outcomes.append(run_one(bench, ctx))
    return outcomes


# ------------------------------------------------------------------ presentation

def verdict(fig: Figure) -> str:
    """The goal verdict as text: "met", "MISSED" or "-" (no goal)."""
    if fig.goal is None:
        return "-"
    return "met" if fig.goal.met(fig.value) else "MISSED"


def _format_value(value: float) -> str:
    # Counts stay integers; measured floats keep three decimals even when whole ("0.000 s", not "0 s").
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}"


def format_table(outcomes: list[Outcome]) -> str:
    """A plain-text table: benchmark, figure, value, unit, goal, verdict; notes and errors below."""
    header = ("benchmark", "figure", "value", "unit", "goal", "verdict")
    rows = []
    for outcome in outcomes:
        if outcome.error:
            rows.append((outcome.name, "(could not run)", "", "", "", "ERROR"))
        for fig in outcome.figures:
            rows.append((outcome.name, fig.name, _format_value(fig.value), fig.unit,
                         str(fig.goal) if fig.goal else "", verdict(fig)))
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    line = lambda row: "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
    out = [line(header), line(["-" * w for w in widths]), *map(line, rows)]
    notes = [f"  {o.name} / {f.name}: {f.note}" for o in outcomes for f in o.figures if f.note]
    if notes:
        out += ["", "notes:", *notes]
    errors = [f"  {o.name}: {o.error}" for o in outcomes if o.error]
    if errors:
        out += ["", "could not run (tracebacks above, and in --json):", *errors]
    return "\n".join(out)


def to_json(outcomes: list[Outcome], settings: BenchSettings) -> str:
    """The results as JSON, for comparing runs over time."""
    doc = {
        "settings": {"quick": settings.quick, "idle_s": settings.idle_s, "boot_repeats": settings.boot_repeats},
        "host": {"python": platform.python_version(), "machine": platform.machine(), "kernel": platform.release()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "benchmarks": [
            {
                "name": o.name,
                "seconds": round(o.seconds, 3),
                "error": o.error or None,
                "traceback": o.trace or None,
                "figures": [
                    {"name": f.name, "value": f.value, "unit": f.unit, "goal": str(f.goal) if f.goal else None,
                     "met": None if f.goal is None else f.goal.met(f.value), "note": f.note or None}
                    for f in o.figures
                ],
            }
            for o in outcomes
        ],
    }
    return json.dumps(doc, indent=2)
