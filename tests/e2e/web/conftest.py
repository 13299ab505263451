"""Fixtures of the dashboard's browser tests: one stack (CSMS, daemon, web) and one browser per module.

Starting chromium and the two processes costs seconds, so a module shares them; each test leaves the
station as it found it (cable out, faults cleared).
"""

from __future__ import annotations

import pytest

from tests.harness.browser import Browser
from tests.harness.dashboard import DashboardStack


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """A running :class:`DashboardStack` (OCPP 1.6, no dashboard password), stopped after the module."""
    # Meter polled every 0.3 s: the fault test's meter-offline is noticed in about a second.
    with DashboardStack(tmp_path_factory.mktemp("dashboard"), meter_poll_s=0.3) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module."""
    opened = Browser()
    yield opened
    opened.quit()
