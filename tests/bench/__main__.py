"""`python -m tests.bench [--quick] [--only NAME ...] [--json PATH]`: run benchmarks, print figures.

Benchmarks report numbers; a missed goal is shown in the table, not in the exit
status. The exit status is 1 only when a benchmark could not run at all (2 for bad usage).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.bench.registry import discover
from tests.bench.runner import BenchSettings, format_table, run_benchmarks, to_json


def build_parser() -> argparse.ArgumentParser:
    """The command line of the benchmark runner."""
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true",
                        help="shorten the long measurements (idle window 10 s instead of 60 s)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def _progress(message: str) -> None:
    # Progress goes to stderr so stdout is only the table.
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks and print the table; see the module docstring for exit statuses."""
    args = build_parser().parse_args(argv)
    if args.list:
        for bench in discover().values():
            print(f"{bench.name:20} goal {str(bench.goal or '-'):12} {bench.doc}")
        return 0
    settings = BenchSettings.quick_settings() if args.quick else BenchSettings()
    try:
        outcomes = run_benchmarks(settings, only=args.only, progress=_progress)
    except KeyError as exc:
        print(f"python -m tests.bench: {exc.args[0]}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        if outcome.trace:
            print(f"--- {outcome.name} could not run:\n{outcome.trace}", file=sys.stderr)
    mode = "quick" if settings.quick else "full"
    print(f"\nbenchmarks ({mode}: idle window {settings.idle_s:g} s, {settings.boot_repeats} boot runs)\n")
    print(format_table(outcomes))
    if args.json:
        Path(args.json).write_text(to_json(outcomes, settings) + "\n")
        print(f"\nJSON written to {args.json}")
    return 1 if any(outcome.error for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
