"""An in-process agent on the mock HAL, configured for a test and pointed at a simulated CSMS."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agent.app import Agent
from agent.config import parse_config

FAST_RETRY = {
    "OCPPCommCtrlr.RetryBackOffWaitMinimum": 1,
    "OCPPCommCtrlr.RetryBackOffRandomRange": 0,
}


def agent_config(tmp_path: Path, url: str, *, ocpp_version: str = "1.6", csms: dict | None = None,
                 variables: dict | None = None, configuration: dict | None = None, evses: int = 1):
    """A validated config for a mock-HAL agent whose state lives in ``tmp_path``."""
    return parse_config(
        {
            "station": {"id": "CP1", "data_dir": str(tmp_path / "data"), "vendor": "Acme", "model": "Test"},
            "csms": {"url": url, "ocpp_version": ocpp_version, "response_timeout_s": 5.0, **(csms or {})},
            "evse": [{"id": i} for i in range(1, evses + 1)],
            "hal": {"backend": "mock"},
            "ocpp16": {"configuration": configuration or {}},
            "ocpp201": {"variables": {**FAST_RETRY, **(variables or {})}},
        }
    )


@contextlib.asynccontextmanager
async def running_agent(config):
    """Start an Agent in this event loop; shut it down (safe outputs) on exit."""
    agent = Agent(config)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.shutdown()


async def wait_until(predicate, *, timeout: float = 5.0, interval: float = 0.02):
    """Poll ``predicate`` until truthy (for state that has no event to wait on)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := predicate()):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
    return result
