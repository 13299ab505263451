"""OCPP 1.6 Firmware Management end to end: UpdateFirmware and GetDiagnostics against
local servers (``tests.agent.transfer_servers``)."""

import asyncio
import io
import sys
import tarfile
import time

import pytest
from ocpp.v16 import call as call16

from agent.clock import format_iso
from agent.core.diagnostics import build_archive, redact_config
from agent.core.firmware import STORE_KEY, FirmwareJob, transaction_running
from agent.csms_sim import CsmsBehaviour, CsmsSimulator
from agent.store import StateStore
from tests.agent.test_core16 import CARD, charge_session, reach_status
from tests.agent.transfer_servers import CLOSED_PORT_URL, IMAGE, ftp_server, http_server, no_proxy  # noqa: F401
from tests.harness import agent_config, running_agent

SECRET = "hunter2-secret"


@pytest.fixture
async def csms():
    sim = CsmsSimulator(ocpp_version="1.6", behaviour=CsmsBehaviour(heartbeat_interval=300))
    await sim.start()
    yield sim
    await sim.stop()


# ------------------------------------------------------------------ helpers


def marker_installer(marker):
    """An install command that copies the image (appended as the last argument) to ``marker``."""
    code = "import shutil, sys; shutil.copyfile(sys.argv[2], sys.argv[1])"
    return [sys.executable, "-c", code, str(marker)]


def wire(agent_, tmp_path, install_command, config_text: str | None = None):
    """Replace the app's job with one using the test's install command and a fast poll (before the first await)."""
    core = agent_.core
    core.data_dir = agent_.config.station.data_dir
    core.firmware = FirmwareJob(core.store, core.data_dir, install_command=install_command,
                                busy=transaction_running(core.station), poll_s=0.05, clock=agent_.clock.time)
    if config_text is not None:
        path = tmp_path / "agent.toml"
        path.write_text(config_text)
        core.config_path = str(path)
    return core.firmware


def firmware_statuses(csms):
    return [r.payload["status"] for r in csms.calls("FirmwareStatusNotification")]


def diagnostics_statuses(csms):
    return [r.payload["status"] for r in csms.calls("DiagnosticsStatusNotification")]


async def final_firmware_status(csms, timeout=8.0):
    terminal = {"Installed", "InstallationFailed", "DownloadFailed"}
    await csms.wait_for(lambda: terminal & set(firmware_statuses(csms)), timeout=timeout)
    return firmware_statuses(csms)


def update(location, **kwargs):
    return call16.UpdateFirmware(location=location, retrieve_date=format_iso(time.time()), **kwargs)


# ------------------------------------------------------------------ firmware


async def test_update_waits_for_the_transaction_then_installs(tmp_path, csms, http_server):
    marker = tmp_path / "installed.bin"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker))
        await charge_session(agent_, csms)
        result = await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin"))
        assert result is not None  # the empty UpdateFirmware.conf
        await csms.wait_for(lambda: "Downloaded" in firmware_statuses(csms))
        await asyncio.sleep(0.3)
        assert "Installing" not in firmware_statuses(csms) and not marker.exists()  # charging goes on
        agent_.hal.tap(CARD)
        await csms.wait_for_call("StopTransaction")
        assert await final_firmware_status(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert marker.read_bytes() == IMAGE
        assert agent_.store.get(STORE_KEY) is None
        await job.close()


async def test_update_over_ftp_logs_in_with_the_url_credentials(tmp_path, csms, ftp_server):
    marker = tmp_path / "installed.bin"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker))
        await reach_status(csms, "Available")
        await csms.call("CP1", update(f"{ftp_server.url}/pub/image-2.0.bin"))
        assert await final_firmware_status(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert marker.read_bytes() == IMAGE
        assert ftp_server.logins == ["pa@ss"]
        await job.close()


async def test_unreachable_firmware_is_retried_then_download_failed(tmp_path, csms, caplog):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, [sys.executable, "-c", "pass"])
        await reach_status(csms, "Available")
        await csms.call("CP1", update(CLOSED_PORT_URL + "fw.bin", retries=3, retry_interval=0))
        assert await final_firmware_status(csms) == ["Downloading", "DownloadFailed"]
        assert "attempt 3 of 3" in caplog.text
        assert not list((agent_.core.data_dir / "firmware").iterdir())  # no partial file left behind
        await job.close()


async def test_failing_install_command_reports_installation_failed(tmp_path, csms, http_server):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, [sys.executable, "-c", "raise SystemExit(3)"])
        await reach_status(csms, "Available")
        await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin"))
        assert await final_firmware_status(csms) == ["Downloading", "Downloaded", "Installing",
                                                     "InstallationFailed"]
        result = await csms.call("CP1", call16.TriggerMessage(requested_message="FirmwareStatusNotification"))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: len(firmware_statuses(csms)) == 5)
        assert firmware_statuses(csms)[-1] == "Idle"
        await job.close()


async def test_install_that_rebooted_is_reported_installed_once_at_the_next_start(tmp_path, csms):
    config = agent_config(tmp_path, csms.url)
    data_dir = config.station.data_dir
    data_dir.mkdir(parents=True)
    with StateStore(data_dir / "state.sqlite") as store:  # what the job wrote before the installer rebooted
        store.put(STORE_KEY, {"location": "http://x/fw.bin", "retrieve_at": 0, "retries": 1,
                              "retry_interval_s": 0, "phase": "installing"})
    async with running_agent(config) as agent_:
        job = wire(agent_, tmp_path, None)
        await csms.wait_for(lambda: firmware_statuses(csms) == ["Installed"])
        assert agent_.store.get(STORE_KEY) is None
        await csms.drop_connections()  # a reconnection does not report it again
        await csms.wait_for_call("BootNotification", count=2, timeout=10)
        await reach_status(csms, "Available")
        assert firmware_statuses(csms) == ["Installed"]
        await job.close()


async def test_update_without_an_install_command_is_reported_failed(tmp_path, csms, http_server):
    async with running_agent(agent_config(tmp_path, csms.url)):  # system.firmware_install_command not set
        await reach_status(csms, "Available")
        await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin"))
        assert await final_firmware_status(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]


# ------------------------------------------------------------------ diagnostics

CONFIG = f"""[station]
id = "CP1"

[csms]
url = "wss://csms.example/ocpp"
password = "{SECRET}"
"""


def archive_members(data: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers()}


async def test_get_diagnostics_uploads_log_and_redacted_config_over_http(tmp_path, csms, http_server):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, None, config_text=CONFIG)
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call16.GetDiagnostics(location=f"{http_server.url}/upload/", retries=2))
        assert result.file_name.startswith("diagnostics-CP1-") and result.file_name.endswith(".tar.gz")
        await csms.wait_for(lambda: diagnostics_statuses(csms)[-1:] == ["Uploaded"])
        assert diagnostics_statuses(csms) == ["Uploading", "Uploaded"]
        members = archive_members(http_server.uploads[f"/upload/{result.file_name}"])
        assert "BootNotification" in members["messages.jsonl"]
        assert SECRET not in members["config.toml"] and 'password = "***"' in members["config.toml"]
        assert 'url = "wss://csms.example/ocpp"' in members["config.toml"]
        assert not list((agent_.core.data_dir / "diagnostics").iterdir())  # removed once delivered
        await job.close()


async def test_get_diagnostics_over_ftp_with_a_time_window(tmp_path, csms, ftp_server):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, None, config_text=CONFIG)
        await reach_status(csms, "Available")
        since = format_iso(time.time() + 3600)  # a window in the future: no frames, still an archive
        result = await csms.call("CP1", call16.GetDiagnostics(location=f"{ftp_server.url}/incoming",
                                                              start_time=since))
        await csms.wait_for(lambda: diagnostics_statuses(csms)[-1:] == ["Uploaded"])
        members = archive_members(ftp_server.files[f"/incoming/{result.file_name}"])
        assert members["messages.jsonl"] == ""
        assert SECRET not in members["config.toml"]
        await job.close()


async def test_unreachable_diagnostics_location_reports_upload_failed(tmp_path, csms):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, None)
        await reach_status(csms, "Available")
        result = await csms.call("CP1", call16.GetDiagnostics(location=CLOSED_PORT_URL, retries=2,
                                                              retry_interval=0))
        assert result.file_name
        await csms.wait_for(lambda: diagnostics_statuses(csms)[-1:] == ["UploadFailed"])
        assert diagnostics_statuses(csms) == ["Uploading", "UploadFailed"]
        await job.close()


# ------------------------------------------------------------------ units


def test_redact_config_hides_every_secret_kind():
    text = ('basic_auth_password = "a"\nAuthorizationKey: b\n  private_key = \'c\'\nname = "password-free"\n'
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
    redacted = redact_config(text)
    for secret in ('"a"', " b", "'c'", "MIIB"):
        assert secret not in redacted
    assert 'name = "password-free"' in redacted


def test_build_archive_without_message_log_or_config(tmp_path):
    path = build_archive(tmp_path, start=None, stop=None, config_text=None, name="d.tar.gz")
    assert archive_members(path.read_bytes()) == {"messages.jsonl": ""}
