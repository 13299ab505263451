"""The figures recorder of a reliability run, and the outcome of each test for the report."""

from __future__ import annotations

import os

import pytest

from tests.reliability.figures import figures_from_env

FIGURES = figures_from_env()


def full_size(name: str, default: float) -> float:
    """A size of the full-size run, overridable with an environment variable (e.g. RELIABILITY_SOAK_S)."""
    return float(os.environ.get(name, default))


@pytest.fixture(scope="session")
def figures():
    """The run's ``Figures``; saved to ``$RELIABILITY_FIGURES`` when the session ends."""
    return FIGURES


def pytest_runtest_logreport(report):
    """Keep each reliability test's outcome (a known bug shows as xfailed, with its reason)."""
    if "tests/reliability/" not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = report.outcome
        reason = ""
        if hasattr(report, "wasxfail"):
            outcome, reason = ("xfailed" if report.skipped else "xpassed"), report.wasxfail
        FIGURES.outcome(report.nodeid, outcome, report.duration, reason)


def pytest_sessionfinish(session):
    """Write the figures file if this run recorded anything."""
    if FIGURES.parts or FIGURES.outcomes:
        FIGURES.save()
