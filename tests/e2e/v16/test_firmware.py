"""OCPP 1.6 Firmware Management end to end: UpdateFirmware, SignedUpdateFirmware (security
extension) and GetDiagnostics against local servers (``tests.harness.transfer_servers``)."""

import asyncio
import sys
import time

from ocpp.v16 import call as call16

from agent.runtime.clock import format_iso
from agent.core.management.log_upload import build_archive, redact_config
from agent.core.management.firmware import (
    EXIT_REBOOT,
    EXIT_VERIFICATION_FAILED,
    STORE_KEY,
)
from agent.core.management.security_events import (
    FIRMWARE_UPDATED,
    INVALID_FIRMWARE_SIGNATURE,
    INVALID_FIRMWARE_SIGNING_CERTIFICATE,
)
from agent.runtime.store import StateStore
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.certificates import install_root, make_root, make_signer
from tests.harness.firmware import archive_members, firmware_type, marker_installer, security_event_types, wire
from tests.harness.transfer_servers import CLOSED_PORT_URL, IMAGE
from tests.harness.v16 import (
    CARD,
    charge_session,
    diagnostics_statuses,
    final_firmware_status,
    firmware_statuses,
    reach_status,
    update,
)

SECRET = "hunter2-secret"


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
        await csms.wait_for(lambda: csms.connections == 2 and "CP1" in csms.stations, timeout=10)
        await csms.call("CP1", call16.TriggerMessage(requested_message="Heartbeat"))  # after the resumed start
        await csms.wait_for_call("Heartbeat")
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


# ------------------------------------------------------------------ signed firmware (security extension)


def signed_statuses(csms):
    return [(r.payload["status"], r.payload.get("requestId")) for r in csms.calls("SignedFirmwareStatusNotification")]


def signed_update(url, signer, *, request_id=7, **kwargs):
    return call16.SignedUpdateFirmware(request_id=request_id, firmware=firmware_type(url, signer, **kwargs),
                                       retries=1, retry_interval=0)


async def final_signed_status(csms, timeout=8.0):
    terminal = {"Installed", "InstallationFailed", "DownloadFailed", "InvalidSignature", "InstallVerificationFailed"}
    await csms.wait_for(lambda: terminal & {status for status, _ in signed_statuses(csms)}, timeout=timeout)
    return signed_statuses(csms)


async def test_signed_update_is_verified_then_installed(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker))
        install_root(agent_.core.certificates, root)
        await reach_status(csms, "Available")
        result = await csms.call("CP1", signed_update(f"{http_server.url}/fw/image-2.0.bin", signer))
        assert result.status == "Accepted"
        assert await final_signed_status(csms) == [(s, 7) for s in (
            "Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed")]
        assert marker.read_bytes() == IMAGE
        assert firmware_statuses(csms) == []  # a signed job speaks only the security extension's message
        assert FIRMWARE_UPDATED in security_event_types(agent_, csms)
        assert agent_.store.get(STORE_KEY) is None
        assert not list((agent_.core.data_dir / "firmware").iterdir())  # the image is not kept
        await job.close()


async def test_signed_update_with_a_bad_signature_is_never_installed(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker))
        install_root(agent_.core.certificates, root)
        await reach_status(csms, "Available")
        request = signed_update(f"{http_server.url}/fw/image-2.0.bin", signer, image=IMAGE + b"tampered")
        assert (await csms.call("CP1", request)).status == "Accepted"
        assert await final_signed_status(csms) == [("Downloading", 7), ("Downloaded", 7), ("InvalidSignature", 7)]
        await asyncio.sleep(0.2)
        assert not marker.exists()  # the install command never ran
        assert not list((agent_.core.data_dir / "firmware").iterdir())  # the image is deleted
        assert INVALID_FIRMWARE_SIGNATURE in security_event_types(agent_, csms)
        assert agent_.store.get(STORE_KEY) is None
        await job.close()


async def test_signing_certificate_not_from_the_manufacturer_is_invalid(tmp_path, csms, http_server, root):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, [sys.executable, "-c", "pass"])
        install_root(agent_.core.certificates, root)
        await reach_status(csms, "Available")
        stranger = make_signer(make_root("Someone Else"))
        result = await csms.call("CP1", signed_update(f"{http_server.url}/fw/image-2.0.bin", stranger))
        assert result.status == "InvalidCertificate"
        expired = make_signer(root, expired=True)
        result = await csms.call("CP1", signed_update(f"{http_server.url}/fw/image-2.0.bin", expired))
        assert result.status == "InvalidCertificate"
        assert security_event_types(agent_, csms).count(INVALID_FIRMWARE_SIGNING_CERTIFICATE) == 2
        await asyncio.sleep(0.2)
        assert signed_statuses(csms) == [] and not job.running
        await job.close()


async def test_new_signed_update_cancels_a_scheduled_one(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    url = f"{http_server.url}/fw/image-2.0.bin"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker))
        install_root(agent_.core.certificates, root)
        await reach_status(csms, "Available")
        first = await csms.call("CP1", signed_update(url, signer, request_id=1, retrieve_in_s=3600))
        assert first.status == "Accepted"
        await csms.wait_for(lambda: signed_statuses(csms) == [("DownloadScheduled", 1)])
        result = await csms.call("CP1", call16.ExtendedTriggerMessage(requested_message="FirmwareStatusNotification"))
        assert result.status == "Accepted"
        await csms.wait_for(lambda: len(signed_statuses(csms)) == 2)
        assert signed_statuses(csms)[-1] == ("DownloadScheduled", 1)  # the current status, with its requestId
        second = await csms.call("CP1", signed_update(url, signer, request_id=2))
        assert second.status == "AcceptedCanceled"
        statuses = await final_signed_status(csms)
        assert statuses[2:] == [(s, 2) for s in ("Downloading", "Downloaded", "SignatureVerified", "Installing",
                                                 "Installed")]
        assert agent_.store.get(STORE_KEY) is None
        await job.close()


async def test_install_date_in_the_future_is_scheduled_then_installed(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker))
        install_root(agent_.core.certificates, root)
        await reach_status(csms, "Available")
        request = signed_update(f"{http_server.url}/fw/image-2.0.bin", signer, install_in_s=1.2)
        assert (await csms.call("CP1", request)).status == "Accepted"
        await csms.wait_for(lambda: signed_statuses(csms)[-1:] == [("InstallScheduled", 7)])
        assert not marker.exists()
        scheduled_at = time.monotonic()
        assert await final_signed_status(csms) == [(s, 7) for s in (
            "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled", "Installing", "Installed")]
        assert time.monotonic() - scheduled_at > 0.5 and marker.read_bytes() == IMAGE
        await job.close()


async def test_signed_install_that_reboots_is_reported_installed_after_the_restart(tmp_path, csms, http_server,
                                                                                   root, signer):
    config = agent_config(tmp_path, csms.url)
    marker = tmp_path / "installed.bin"
    async with running_agent(config) as agent_:
        job = wire(agent_, tmp_path, marker_installer(marker, exit_status=EXIT_REBOOT))
        install_root(agent_.core.certificates, root)
        await reach_status(csms, "Available")
        await csms.call("CP1", signed_update(f"{http_server.url}/fw/image-2.0.bin", signer))
        await csms.wait_for(lambda: signed_statuses(csms)[-1:] == [("InstallRebooting", 7)])
        await wait_until(lambda: agent_.reset_requested is True)  # the agent asked for the board's reboot
        assert agent_.store.get(STORE_KEY)["phase"] == "rebooting"
        await job.close()
    assert signed_statuses(csms)[-2:] == [("Installing", 7), ("InstallRebooting", 7)]
    async with running_agent(config) as agent_:  # the board is back
        await csms.wait_for(lambda: signed_statuses(csms)[-1:] == [("Installed", 7)], timeout=8)
        assert agent_.store.get(STORE_KEY) is None
        assert FIRMWARE_UPDATED in security_event_types(agent_, csms)
        assert not (agent_.core.data_dir / "firmware").exists() or not list(
            (agent_.core.data_dir / "firmware").iterdir())


async def test_plain_update_maps_install_verification_failed(tmp_path, csms, http_server):
    async with running_agent(agent_config(tmp_path, csms.url)) as agent_:
        job = wire(agent_, tmp_path, marker_installer(tmp_path / "m", exit_status=EXIT_VERIFICATION_FAILED))
        await reach_status(csms, "Available")
        await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin"))
        assert await final_firmware_status(csms) == ["Downloading", "Downloaded", "Installing",
                                                     "InstallationFailed"]  # plain 1.6 has no finer word
        await job.close()
