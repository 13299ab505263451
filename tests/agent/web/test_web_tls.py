"""The dashboard over TLS ([web] tls_cert_file / tls_key_file), and the warning when it goes without."""

import base64
import logging
import ssl

import aiohttp
from aiohttp import web

from agent.config import parse_config
from agent.web.server import create_app, listening_plan
from tests.harness.web import free_port

PASSWORD = "Tls-Dashboard-77"


def config_for(tmp_path, web_section):
    return parse_config({
        "station": {"id": "CP1", "data_dir": str(tmp_path / "data")},
        "csms": {"url": "ws://127.0.0.1:9/ocpp"},
        "evse": [{"id": 1}],
        "web": web_section,
    })


async def test_web_serves_https_with_the_configured_certificate(tmp_path, tls_pki):
    config = config_for(tmp_path, {"listen": "0.0.0.0:8443", "password": PASSWORD,
                                   "tls_cert_file": str(tls_pki.server.cert), "tls_key_file": str(tls_pki.server.key)})
    _, _, context = listening_plan(config)
    assert context is not None
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        trust = ssl.create_default_context(cafile=str(tls_pki.ca.cert))
        auth = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/api/log", ssl=trust, headers=auth) as response:
                assert response.status == 200 and await response.json() == {"frames": []}
            async with http.get(f"https://127.0.0.1:{port}/api/log", ssl=trust) as response:
                assert response.status == 401
    finally:
        await runner.cleanup()


def test_web_warns_on_a_network_address_without_tls(tmp_path, caplog):
    config = config_for(tmp_path, {"listen": "127.0.0.1:8080", "password": PASSWORD})
    with caplog.at_level(logging.WARNING, logger="agent.web.server"):
        assert listening_plan(config) == ("127.0.0.1", 8080, None)
        assert caplog.records == []
        assert listening_plan(config, "0.0.0.0:8080") == ("0.0.0.0", 8080, None)
    assert "without TLS" in caplog.text
