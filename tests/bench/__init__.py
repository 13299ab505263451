"""Benchmarks that print figures: `python -m tests.bench [--quick] [--only NAME ...] [--json PATH]`.

To add one, create ``tests/bench/bench_<topic>.py`` (it is imported automatically) with::

    from tests.bench.registry import Figure, benchmark, below

    @benchmark("my_figure", goal=below(5.0, "ms"))
    async def my_figure(ctx):          # or a plain def
        ...                            # ctx.settings.quick / idle_s / boot_repeats
        return [Figure("p50", 1.2, "ms"), Figure("p99", 4.0, "ms")]

Figures take the benchmark's goal unless they pass ``goal=`` (``None`` = informational).
Several benchmarks can share one expensive run with ``await ctx.shared(key, measure)``.
"""
