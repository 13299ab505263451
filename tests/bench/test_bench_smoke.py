"""Smoke test of the benchmark harness: it runs, and every figure is a number.

Goals are deliberately not asserted: benchmarks inform, the suite must not flake on a busy machine.
"""

import json
import math

from tests.bench.registry import Figure, below, benchmark, equal, normalise, REGISTRY
from tests.bench.runner import BenchSettings, format_table, run_benchmarks, to_json

FOUNDATION = {
    "start_to_boot": {"median", "max", "SIGTERM exits != 0"},
    "idle_rss": {"VmRSS", "VmHWM (peak)"},
    "idle_cpu": {"CPU utime+stime", "threads", "SIGTERM exit status"},
}


def test_foundation_benchmarks_report_numeric_figures():
    # Tiny durations: one boot and a 2 s idle window keep this at a few seconds.
    settings = BenchSettings(idle_s=2.0, boot_repeats=1)
    outcomes = run_benchmarks(settings, only=list(FOUNDATION))

    assert [o.name for o in outcomes] == list(FOUNDATION)
    for outcome in outcomes:
        assert outcome.error == "", outcome.trace
        figures = {f.name: f for f in outcome.figures}
        assert FOUNDATION[outcome.name] <= figures.keys()
        for fig in outcome.figures:
            assert isinstance(fig.value, (int, float)) and math.isfinite(fig.value), fig
    by_name = {o.name: {f.name: f.value for f in o.figures} for o in outcomes}
    assert 0 < by_name["start_to_boot"]["median"] < 20
    assert by_name["idle_rss"]["VmRSS"] > 1
    assert by_name["idle_cpu"]["threads"] >= 1
    # Both presentations accept the outcomes.
    assert "start_to_boot" in format_table(outcomes)
    assert json.loads(to_json(outcomes, settings))["benchmarks"][0]["figures"]


def test_figures_inherit_the_benchmark_goal_unless_they_set_one():
    @benchmark("_smoke_inherit", goal=below(1.0, "s"))
    def fake(ctx):
        return [Figure("a", 0.5, "s"), Figure("b", 2.0, "s", goal=None), Figure("c", 0, "", goal=equal(0))]

    try:
        figures = normalise(REGISTRY["_smoke_inherit"], fake(None))
        assert [str(f.goal) if f.goal else None for f in figures] == ["< 1 s", None, "== 0"]
        assert normalise(REGISTRY["_smoke_inherit"], 0.25)[0].unit == "s"
    finally:
        del REGISTRY["_smoke_inherit"]
