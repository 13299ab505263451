"""Firmware downloads and diagnostics uploads over HTTPS and FTPS, against loopback TLS servers.

The servers' certificates come from a test CA the agent trusts through SSL_CERT_FILE,
the way a board trusts its system store; a server it cannot verify is refused.
"""

import asyncio

import pytest
from ocpp.v16 import call as call16

from agent.core.management.firmware import TransferError, download
from tests.harness import agent_config, running_agent
from tests.harness.firmware import marker_installer, wire
from tests.harness.transfer_servers import IMAGE
from tests.harness.v16 import diagnostics_statuses, final_firmware_status, update


@pytest.mark.parametrize("server", ["https_server", "ftps_server"])
async def test_firmware_download_over_tls(tmp_path, csms, server, request):
    server = request.getfixturevalue(server)
    path = "/fw/image-2.0.bin" if server.url.startswith("https") else "/pub/image-2.0.bin"
    marker = tmp_path / "installed.bin"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker))
        await csms.wait_for_station("CP1")
        await csms.call("CP1", update(server.url + path))
        assert await final_firmware_status(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert marker.read_bytes() == IMAGE
        await job.close()
    if server.url.startswith("ftps"):
        assert server.logins == ["pa@ss"]  # the password went over the protected channel only


@pytest.mark.parametrize("server", ["https_server", "ftps_server"])
async def test_diagnostics_upload_over_tls(tmp_path, csms, server, request):
    server = request.getfixturevalue(server)
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        wire(agent_, tmp_path, None)
        await csms.wait_for_station("CP1")
        location = server.url + ("/upload/" if server.url.startswith("https") else "/incoming")
        reply = await csms.call("CP1", call16.GetDiagnostics(location=location))
        await csms.wait_for(lambda: "Uploaded" in diagnostics_statuses(csms), timeout=8)
    stored = server.uploads if server.url.startswith("https") else server.files
    name = reply.file_name
    assert any(key.endswith(name) for key in stored), sorted(stored)


@pytest.mark.parametrize("server", ["https_server", "ftps_server"])
async def test_a_server_the_station_cannot_verify_is_refused(tmp_path, server, request, monkeypatch):
    server = request.getfixturevalue(server)
    pki = request.getfixturevalue("tls_pki")
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.other_ca.cert))  # trust an unrelated CA only
    path = "/fw/image-2.0.bin" if server.url.startswith("https") else "/pub/image-2.0.bin"
    with pytest.raises(TransferError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await asyncio.to_thread(download, server.url + path, tmp_path / "image.bin", timeout=5)
    assert not (tmp_path / "image.bin").exists()
