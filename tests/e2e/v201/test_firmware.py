"""OCPP 2.0.1 block L end to end: UpdateFirmware, signed and unsigned, against the loopback HTTP
server (``tests.harness.transfer_servers``), with real signature checks."""

import asyncio
import dataclasses
import sys

from ocpp.v201 import call as call201

from agent.core.management.firmware import EXIT_REBOOT, STORE_KEY
from agent.core.management.security_events import (
    FIRMWARE_UPDATED,
    INVALID_FIRMWARE_SIGNATURE,
    INVALID_FIRMWARE_SIGNING_CERTIFICATE,
)
from agent.protocol.v201 import firmware as v201_firmware
from tests.harness import agent_config, running_agent, wait_until
from tests.harness.certificates import install_root, make_root, make_signer
from tests.harness.firmware import firmware_type, marker_installer, security_event_types, wire
from tests.harness.transfer_servers import IMAGE

UNSIGNED = None


def config(tmp_path, csms):
    return agent_config(tmp_path, csms.url, ocpp_version=csms.ocpp_version)


def with_installer(config_, argv):
    """``config_`` with ``system.firmware_install_command`` set, as the app wires it at every start."""
    return dataclasses.replace(config_, system=dataclasses.replace(config_.system,
                                                                   firmware_install_command=tuple(argv)))


def statuses(csms):
    return [(r.payload["status"], r.payload.get("requestId")) for r in csms.calls("FirmwareStatusNotification")]


def update(url, signer_, *, request_id=11, **kwargs):
    return call201.UpdateFirmware(request_id=request_id, firmware=firmware_type(url, signer_, **kwargs),
                                  retries=1, retry_interval=0)


async def final_status(csms, timeout=8.0):
    terminal = {"Installed", "InstallationFailed", "DownloadFailed", "InvalidSignature", "InstallVerificationFailed"}
    await csms.wait_for(lambda: terminal & {status for status, _ in statuses(csms)}, timeout=timeout)
    return statuses(csms)


async def ready(agent_, csms, tmp_path, install_command, root_=None):
    """The test's job wired in, the manufacturer root installed, the station registered."""
    job = wire(agent_, tmp_path, install_command)
    if root_ is not None:
        install_root(agent_.core.certificates, root_)
    await csms.wait_for(lambda: csms.calls("StatusNotification"))
    return job


def image_files(agent_):
    directory = agent_.core.data_dir / "firmware"
    return list(directory.iterdir()) if directory.exists() else []


async def test_signed_update_is_verified_then_installed(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, marker_installer(marker), root)
        result = await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin", signer))
        assert result.status == "Accepted"
        assert await final_status(csms) == [(s, 11) for s in (
            "Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed")]
        assert marker.read_bytes() == IMAGE and not image_files(agent_)
        await csms.wait_for(lambda: FIRMWARE_UPDATED in security_event_types(agent_, csms))
        assert agent_.store.get(STORE_KEY) is None
        await job.close()


async def test_unsigned_update_is_installed_without_verification(tmp_path, csms, http_server):
    marker = tmp_path / "installed.bin"
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, marker_installer(marker))  # no manufacturer root needed
        result = await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin", UNSIGNED))
        assert result.status == "Accepted"
        assert await final_status(csms) == [(s, 11) for s in ("Downloading", "Downloaded", "Installing", "Installed")]
        assert marker.read_bytes() == IMAGE
        await job.close()


async def test_bad_signature_is_never_installed_and_the_image_deleted(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, marker_installer(marker), root)
        other_image = f"{http_server.url}/fw/other.bin"
        http_server.files["/fw/other.bin"] = b"not what was signed"
        assert (await csms.call("CP1", update(other_image, signer))).status == "Accepted"
        assert await final_status(csms) == [("Downloading", 11), ("Downloaded", 11), ("InvalidSignature", 11)]
        await csms.wait_for(lambda: INVALID_FIRMWARE_SIGNATURE in security_event_types(agent_, csms))
        assert not marker.exists() and not image_files(agent_)
        assert agent_.store.get(STORE_KEY) is None and not job.running
        await job.close()


async def test_signing_certificate_not_from_the_manufacturer_is_invalid(tmp_path, csms, http_server, root):
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, [sys.executable, "-c", "pass"], root)
        stranger = make_signer(make_root("Someone Else"))
        result = await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin", stranger))
        assert result.status == "InvalidCertificate"
        await csms.wait_for(lambda: INVALID_FIRMWARE_SIGNING_CERTIFICATE in security_event_types(agent_, csms))
        await asyncio.sleep(0.2)
        assert statuses(csms) == [] and not job.running
        await job.close()


async def test_half_a_signature_or_an_unknown_scheme_is_rejected(tmp_path, csms, http_server, root, signer):
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, [sys.executable, "-c", "pass"], root)
        request = update(f"{http_server.url}/fw/image-2.0.bin", signer)
        del request.firmware["signature"]
        assert (await csms.call("CP1", request)).status == "Rejected"
        assert (await csms.call("CP1", update("file:///etc/passwd", UNSIGNED))).status == "Rejected"
        assert not job.running
        await job.close()


async def test_new_update_cancels_a_scheduled_one_but_not_a_running_install(tmp_path, csms, http_server, root,
                                                                           signer):
    marker = tmp_path / "installed.bin"
    url = f"{http_server.url}/fw/image-2.0.bin"
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, marker_installer(marker, seconds=1.0), root)
        assert (await csms.call("CP1", update(url, signer, request_id=1, retrieve_in_s=3600))).status == "Accepted"
        await csms.wait_for(lambda: statuses(csms) == [("DownloadScheduled", 1)])
        assert (await csms.call("CP1", update(url, signer, request_id=2))).status == "AcceptedCanceled"
        await csms.wait_for(lambda: statuses(csms)[-1:] == [("Installing", 2)])
        # the installer is running: it cannot be stopped half-way
        assert (await csms.call("CP1", update(url, signer, request_id=3))).status == "Rejected"
        assert (await final_status(csms))[1:] == [(s, 2) for s in (
            "Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed")]
        await job.close()


async def test_install_date_in_the_future_is_scheduled_then_installed(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, marker_installer(marker), root)
        request = update(f"{http_server.url}/fw/image-2.0.bin", signer, install_in_s=1.2)
        assert (await csms.call("CP1", request)).status == "Accepted"
        await csms.wait_for(lambda: statuses(csms)[-1:] == [("InstallScheduled", 11)])
        assert not marker.exists()
        assert await final_status(csms) == [(s, 11) for s in (
            "Downloading", "Downloaded", "SignatureVerified", "InstallScheduled", "Installing", "Installed")]
        assert marker.read_bytes() == IMAGE
        await job.close()


async def test_trigger_reports_idle_without_request_id_then_the_running_job(tmp_path, csms, http_server):
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, [sys.executable, "-c", "pass"])
        trigger = call201.TriggerMessage(requested_message="FirmwareStatusNotification")
        assert (await csms.call("CP1", trigger)).status == "Accepted"
        await csms.wait_for(lambda: statuses(csms) == [("Idle", None)])
        await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin", UNSIGNED, retrieve_in_s=3600))
        await csms.wait_for(lambda: len(statuses(csms)) == 2)
        assert (await csms.call("CP1", trigger)).status == "Accepted"
        await csms.wait_for(lambda: len(statuses(csms)) == 3)
        assert statuses(csms)[1:] == [("DownloadScheduled", 11), ("DownloadScheduled", 11)]
        await job.close()


async def test_install_that_reboots_boots_with_reason_firmware_update(tmp_path, csms, http_server, root, signer):
    marker = tmp_path / "installed.bin"
    async with running_agent(config(tmp_path, csms)) as agent_:
        job = await ready(agent_, csms, tmp_path, marker_installer(marker, exit_status=EXIT_REBOOT), root)
        await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin", signer))
        await csms.wait_for(lambda: statuses(csms)[-1:] == [("InstallRebooting", 11)])
        await wait_until(lambda: agent_.reset_requested is True)  # the agent asked for the board's reboot
        await job.close()
    assert statuses(csms) == [(s, 11) for s in (
        "Downloading", "Downloaded", "SignatureVerified", "Installing", "InstallRebooting")]
    assert [r.payload["reason"] for r in csms.calls("BootNotification")] == ["PowerUp"]
    async with running_agent(config(tmp_path, csms)) as agent_:  # the board is back
        await csms.wait_for(lambda: statuses(csms)[-1:] == [("Installed", 11)], timeout=8)
        assert csms.calls("BootNotification")[-1].payload["reason"] == "FirmwareUpdate"
        await csms.wait_for(lambda: FIRMWARE_UPDATED in security_event_types(agent_, csms))
        assert agent_.store.get(STORE_KEY) is None and not image_files(agent_)
        assert agent_.store.get(v201_firmware.BOOT_REASON_KEY) is None
        await csms.drop_connections()  # a reconnection neither boots again nor reports it again
        await csms.wait_for(lambda: csms.connections == 3 and "CP1" in csms.stations, timeout=10)
        await csms.call("CP1", call201.TriggerMessage(requested_message="Heartbeat"))  # after the resumed start
        await csms.wait_for_call("Heartbeat")
        assert len(csms.calls("BootNotification")) == 2
        assert [s for s, _ in statuses(csms)].count("Installed") == 1
        assert security_event_types(agent_, csms).count(FIRMWARE_UPDATED) == 1


async def test_restart_with_the_install_scheduled_resumes_without_downloading_again(tmp_path, csms, http_server,
                                                                                    root, signer):
    marker = tmp_path / "installed.bin"
    config_ = with_installer(config(tmp_path, csms), marker_installer(marker))
    async with running_agent(config_) as agent_:
        install_root(agent_.core.certificates, root)
        await csms.wait_for(lambda: csms.calls("StatusNotification"))
        await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin", signer, install_in_s=2.0))
        await csms.wait_for(lambda: statuses(csms)[-1:] == [("InstallScheduled", 11)])
    del http_server.files["/fw/image-2.0.bin"]  # resuming must not need the server again
    async with running_agent(config_) as agent_:
        assert (await final_status(csms))[4:] == [(s, 11) for s in (
            "Downloaded", "SignatureVerified", "InstallScheduled", "Installing", "Installed")]
        assert marker.read_bytes() == IMAGE and not image_files(agent_)
        assert [r.payload["reason"] for r in csms.calls("BootNotification")] == ["PowerUp", "LocalReset"]


async def test_restart_with_the_download_scheduled_reports_it_again(tmp_path, csms, http_server):
    async with running_agent(config(tmp_path, csms)):
        await csms.wait_for(lambda: csms.calls("StatusNotification"))
        request = update(f"{http_server.url}/fw/image-2.0.bin", UNSIGNED, request_id=5, retrieve_in_s=3600)
        await csms.call("CP1", request)
        await csms.wait_for(lambda: statuses(csms) == [("DownloadScheduled", 5)])
    async with running_agent(config(tmp_path, csms)) as agent_:
        await csms.wait_for(lambda: statuses(csms) == [("DownloadScheduled", 5)] * 2)
        assert agent_.core.firmware.running and agent_.core.firmware.request_id == 5


async def test_update_without_a_job_is_rejected(tmp_path, csms, http_server):
    async with running_agent(config(tmp_path, csms)) as agent_:
        agent_.core.firmware = None
        agent_.core.data_dir = None  # a station without a data directory cannot download anything
        await csms.wait_for(lambda: csms.calls("StatusNotification"))
        result = await csms.call("CP1", update(f"{http_server.url}/fw/image-2.0.bin", UNSIGNED))
        assert result.status == "Rejected"

