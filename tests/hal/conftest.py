"""Shared fixtures for the hardware-layer tests: a mock station, its events, a fake clock."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from hal.mock.hardware import MockHal
from tests.hal.helpers import FEEDBACK_TIMEOUT_S, FakeClock


@pytest.fixture
def events() -> list:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_hal(tmp_path, events):
    def make(**options) -> MockHal:
        options.setdefault("evse_ids", [1, 2])
        options.setdefault("data_dir", tmp_path)
        options.setdefault("emit", events.append)
        options.setdefault("feedback_timeout_s", FEEDBACK_TIMEOUT_S)
        return MockHal(**options)
    return make


@pytest.fixture
async def hal(make_hal):
    station = make_hal()
    await station.start()
    yield station
    await station.close()


@pytest.fixture
def short_dir():
    """A short directory: AF_UNIX socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="hal-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
