"""``ocpp-agent web`` as it ships: a subprocess beside a real agent on the mock HAL and a real CSMS."""

import asyncio
import contextlib
import json
import subprocess
import sys
import time

import aiohttp

from tests.harness import agent_config, running_agent
from tests.harness.v16 import reach_status
from tests.harness.web import REPO, free_port, running_web, web_config_file

LIVE_S = 2.0  # the contract: a change shows on the page within 2 s


def test_web_refuses_a_non_loopback_address_without_password(tmp_path):
    path = web_config_file(tmp_path / "web.toml", data_dir=tmp_path / "data", web={"listen": "0.0.0.0:8080"})
    for extra in ([], ["--listen", f"0.0.0.0:{free_port()}"]):
        done = subprocess.run([sys.executable, "-m", "agent", "web", "--config", str(path), *extra], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1 and "web.password" in done.stderr, done.stderr


async def next_event(stream: aiohttp.StreamReader, predicate, *, timeout: float) -> dict:
    """The first ``status`` event whose data satisfies ``predicate``."""
    async def read():
        while True:
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError("the event stream ended")
            if line.startswith("data: "):
                data = json.loads(line[6:])
                if predicate(data):
                    return data
    return await asyncio.wait_for(read(), timeout)


async def test_web_status_follows_a_running_agent_live(tmp_path, csms):
    config = agent_config(tmp_path, csms.url)
    path = web_config_file(tmp_path / "web.toml", data_dir=tmp_path / "data", csms_url=csms.url)
    with contextlib.ExitStack() as stack:
        web = await asyncio.to_thread(stack.enter_context, running_web(path))
        async with aiohttp.ClientSession(web.url) as http:
            async with http.get("/api/status") as response:
                assert response.status == 503 and "not running" in (await response.json())["error"]
            async with http.get("/") as response:
                assert "The agent is not running" in await response.text()
            async with http.get("/events") as events:
                await next_event(events.content, lambda d: not d["running"], timeout=5)
                async with running_agent(config) as agent:
                    await reach_status(csms, "Available")
                    shown = await next_event(events.content, lambda d: d["running"] and "Connected<" in d["html"],
                                             timeout=10)
                    assert "EVSE 1" in shown["html"] and "Available" in shown["html"]
                    async with http.get("/api/status") as response:
                        status = await response.json()
                    assert status["connected"] is True and status["csms_url"] == f"{csms.url}/CP1"
                    assert status["ocpp_version"] == "1.6" and status["evses"][0]["id"] == 1
                    assert {"status", "power_W", "energy_Wh", "transaction_id", "faults"} <= set(status["evses"][0])

                    started = time.monotonic()
                    agent.hal.inject_fault(1, "reader-offline")
                    await next_event(events.content, lambda d: "reader-offline" in d["html"], timeout=LIVE_S)
                    print(f"mock-HAL fault to the dashboard's event: {(time.monotonic() - started) * 1000:.0f} ms")
                await next_event(events.content, lambda d: not d["running"], timeout=5)  # the agent stopped
        async with aiohttp.ClientSession(web.url) as http:
            async with http.get("/api/status") as response:
                assert response.status == 503
        await asyncio.to_thread(stack.close)
