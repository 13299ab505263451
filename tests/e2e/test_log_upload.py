"""Log upload (GetLog) end to end for OCPP 1.6 (security extension) and 2.0.1, against the CSMS
simulator and the loopback upload servers (``tests.harness.transfer_servers``); units of the job."""

import asyncio
import contextlib
import json
import re
import threading
import time

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from agent.runtime.clock import format_iso
from agent.core.management import log_upload as diagnostics
from agent.core.management.log_upload import (
    LogRequest,
    LogUploadJob,
    UploadCanceled,
    archive_name,
    build_archive,
    redact_text,
    upload,
)
from agent.core.management.security_events import record_security_event
from agent.runtime.message_log import MessageLog
from agent.runtime.store import StateStore
from tests.harness import agent_config, running_agent
from tests.harness.firmware import archive_members
from tests.harness.transfer_servers import CLOSED_PORT_URL

SECRET = "hunter2-secret"
CONFIG = f"""[station]
id = "CP1"

[csms]
url = "wss://csms.example/ocpp"
basic_auth_password = "{SECRET}"
"""
# The canceled upload's status, in each version's words (1.6's UploadLogStatus has no AcceptedCanceled).
CANCELED = {"1.6": "UploadFailure", "2.0.1": "AcceptedCanceled"}


@pytest.fixture(params=["1.6", "2.0.1"])
def ocpp_version(request):
    """Every test with a ``csms`` runs against both versions."""
    return request.param


@pytest.fixture(params=["http", "ftp"])
def target(request):
    """(location, fetch(file name) -> uploaded bytes) on a loopback HTTP or FTP server."""
    if request.param == "http":
        server = request.getfixturevalue("http_server")
        return f"{server.url}/upload/", lambda name: server.uploads[f"/upload/{name}"]
    server = request.getfixturevalue("ftp_server")
    return f"{server.url}/incoming", lambda name: server.files[f"/incoming/{name}"]


# ------------------------------------------------------------------ helpers


@contextlib.asynccontextmanager
async def station(tmp_path, csms):
    """A registered agent of the simulator's version whose config file holds a password."""
    config = agent_config(tmp_path, csms.url, ocpp_version=csms.ocpp_version)
    async with running_agent(config) as agent_:
        path = tmp_path / "agent.toml"
        path.write_text(CONFIG)
        agent_.core.config_path = str(path)
        await csms.wait_for_call("StatusNotification")
        yield agent_
        if agent_.core.logs is not None:
            await agent_.core.logs.close()


def messages(csms):
    """The version's CALL classes, as the CSMS sends them."""
    return call16 if csms.ocpp_version == "1.6" else call201


async def get_log(csms, location, *, request_id=1, log_type="DiagnosticsLog", oldest=None, latest=None, **options):
    log = {"remote_location": location}
    if oldest is not None:
        log["oldest_timestamp"] = format_iso(oldest)
    if latest is not None:
        log["latest_timestamp"] = format_iso(latest)
    request = messages(csms).GetLog(log=log, log_type=log_type, request_id=request_id, **options)
    return await csms.call("CP1", request)


def log_statuses(csms, request_id):
    calls = csms.calls("LogStatusNotification")
    return [r.payload["status"] for r in calls if r.payload.get("requestId") == request_id]


async def ended(csms, request_id, timeout=5.0):
    """The request's statuses once a final one has arrived."""
    final = {"Uploaded", "UploadFailure", "BadMessage", "AcceptedCanceled"}
    await csms.wait_for(lambda: final & set(log_statuses(csms, request_id)), timeout=timeout)
    return log_statuses(csms, request_id)


async def trigger_log_status(csms):
    """Ask for a LogStatusNotification (1.6: ExtendedTriggerMessage) and return it."""
    count = len(csms.calls("LogStatusNotification"))
    if csms.ocpp_version == "1.6":
        result = await csms.call("CP1", call16.ExtendedTriggerMessage(requested_message="LogStatusNotification"))
    else:
        result = await csms.call("CP1", call201.TriggerMessage(requested_message="LogStatusNotification"))
    assert result.status == "Accepted"
    return (await csms.wait_for_call("LogStatusNotification", count=count + 1))[-1].payload


# ------------------------------------------------------------------ end to end, both versions


async def test_logs_diagnostics_and_security_logs_hold_their_window_and_no_secret(tmp_path, csms, target):
    location, fetch = target
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with StateStore(data_dir / "state.sqlite") as store:  # security history from before this start
        record_security_event(store, "FirmwareUpdated", timestamp=1000.0)
        record_security_event(store, "SettingSystemTime", timestamp=2000.0, tech_info="clock corrected by +90 s")
        record_security_event(store, "ReconfigurationOfSecurityParameters", timestamp=3000.0,
                              tech_info=f"AuthorizationKey={SECRET} rotated")
    async with station(tmp_path, csms):
        await asyncio.sleep(0.05)
        oldest = time.time()  # after the BootNotification exchange: that must stay out
        diagnostics_log = await get_log(csms, location, request_id=7, oldest=oldest, latest=time.time() + 60)
        assert diagnostics_log.status == "Accepted"
        assert re.fullmatch(r"diagnostics-CP1-\d{8}T\d{6}Z-7\.tar\.gz", diagnostics_log.filename)
        assert await ended(csms, 7) == ["Uploading", "Uploaded"]
        security_log = await get_log(csms, location, request_id=3, log_type="SecurityLog", oldest=1500, latest=3500)
        assert security_log.status == "Accepted" and security_log.filename.startswith("security-CP1-")
        assert await ended(csms, 3) == ["Uploading", "Uploaded"]
        diagnostics_members = archive_members(fetch(diagnostics_log.filename))
        security_members = archive_members(fetch(security_log.filename))
        assert not list((data_dir / "diagnostics").iterdir())  # removed once delivered

    assert set(diagnostics_members) == {"messages.jsonl", "config.toml"}
    frames = [json.loads(line) for line in diagnostics_members["messages.jsonl"].splitlines()]
    assert any(f["action"] == "GetLog" for f in frames)
    assert not any(f["action"] == "BootNotification" for f in frames)
    assert all(format_iso(oldest) <= f["timestamp"] for f in frames)
    assert 'basic_auth_password = "***"' in diagnostics_members["config.toml"]

    assert list(security_members) == ["security.jsonl"]
    assert [json.loads(line) for line in security_members["security.jsonl"].splitlines()] == [
        {"timestamp": "1970-01-01T00:33:20.000Z", "type": "SettingSystemTime", "techInfo": "clock corrected by +90 s"},
        {"timestamp": "1970-01-01T00:50:00.000Z", "type": "ReconfigurationOfSecurityParameters",
         "techInfo": "AuthorizationKey=*** rotated"},
    ]
    assert all(SECRET not in text for text in {**diagnostics_members, **security_members}.values())


async def test_logs_unreachable_location_is_retried_then_upload_failure(tmp_path, csms, caplog):
    async with station(tmp_path, csms):
        result = await get_log(csms, CLOSED_PORT_URL, request_id=4, retries=2, retry_interval=0)
        assert result.status == "Accepted"
        assert await ended(csms, 4) == ["Uploading", "UploadFailure"]
        assert "log upload, attempt 2 of 2" in caplog.text
        assert not list((tmp_path / "data" / "diagnostics").iterdir())


async def test_logs_unsupported_scheme_is_a_bad_message(tmp_path, csms):
    async with station(tmp_path, csms):
        result = await get_log(csms, "sftp://127.0.0.1/upload/", request_id=5)
        assert result.status == "Accepted"
        assert await ended(csms, 5) == ["BadMessage"]


async def test_logs_a_second_request_cancels_the_running_upload(tmp_path, csms, http_server):
    async with station(tmp_path, csms):
        assert await trigger_log_status(csms) == {"status": "Idle"}  # no upload: no requestId either
        first = await get_log(csms, CLOSED_PORT_URL, request_id=10, retries=3, retry_interval=30)
        assert first.status == "Accepted"
        await csms.wait_for(lambda: log_statuses(csms, 10) == ["Uploading"])
        assert await trigger_log_status(csms) == {"status": "Uploading", "requestId": 10}
        second = await get_log(csms, f"{http_server.url}/upload/", request_id=11, log_type="SecurityLog")
        assert second.status == "AcceptedCanceled"
        assert await ended(csms, 11) == ["Uploading", "Uploaded"]
        # The second Uploading is the triggered one; the canceled upload then ends once, and says so.
        assert log_statuses(csms, 10) == ["Uploading", "Uploading", CANCELED[csms.ocpp_version]]
        assert f"/upload/{second.filename}" in http_server.uploads
        assert await trigger_log_status(csms) == {"status": "Idle"}


# ------------------------------------------------------------------ 1.6: GetDiagnostics shares the job


@pytest.mark.parametrize("ocpp_version", ["1.6"])  # GetDiagnostics is 1.6 only
async def test_logs_get_diagnostics_and_get_log_take_turns(tmp_path, csms, http_server):
    async with station(tmp_path, csms):
        await get_log(csms, CLOSED_PORT_URL, request_id=20, retries=2, retry_interval=30)
        await csms.wait_for(lambda: log_statuses(csms, 20) == ["Uploading"])
        result = await csms.call("CP1", call16.GetDiagnostics(location=f"{http_server.url}/upload/"))
        await csms.wait_for(lambda: [r.payload["status"] for r in csms.calls("DiagnosticsStatusNotification")]
                            == ["Uploading", "Uploaded"])
        assert log_statuses(csms, 20) == ["Uploading", "UploadFailure"]
        assert "messages.jsonl" in archive_members(http_server.uploads[f"/upload/{result.file_name}"])


# ------------------------------------------------------------------ units


def test_logs_archive_names_are_unique_per_request_and_say_the_log_type():
    now = 1_700_000_000.0
    assert archive_name("CP 1", now) == "diagnostics-CP_1-20231114T221320Z.tar.gz"
    assert archive_name("CP1", now, request_id=9) != archive_name("CP1", now, request_id=10)
    assert archive_name("CP1", now, log_type="SecurityLog", request_id=9).startswith("security-CP1-")


def test_logs_redact_text_hides_secret_pairs_and_private_keys():
    text = ("AuthorizationKey=0011aa rotated; password: 'p w' and basic_auth_password=\"x y\"\n"
            "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----")
    redacted = redact_text(text)
    for secret in ("0011aa", "p w", "x y", "MIIB"):
        assert secret not in redacted
    assert redacted.startswith("AuthorizationKey=*** rotated;")
    assert redact_text("clock corrected by +90 s") == "clock corrected by +90 s"
    assert redact_text(None) is None


def test_logs_diagnostics_archive_carries_frames_as_redacted_when_logged(tmp_path):
    with MessageLog(tmp_path / "messages.sqlite") as log:
        log.append("in", json.dumps([2, "1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET}]))
    path = build_archive(tmp_path, start=None, stop=None, config_text=f'password = "{SECRET}"\n', name="d.tar.gz")
    members = archive_members(path.read_bytes())
    assert "ChangeConfiguration" in members["messages.jsonl"]
    assert all(SECRET not in text for text in members.values())


async def test_logs_job_closes_silently_and_starts_fresh(tmp_path):
    with StateStore(tmp_path / "state.sqlite") as store:
        seen = []
        job = LogUploadJob(store, tmp_path, station_id="CP1", on_status=lambda request, status: seen.append(status))
        started = job.start(LogRequest(CLOSED_PORT_URL, request_id=1, retries=2, retry_interval_s=30))
        assert not started.canceled and job.status == diagnostics.UPLOADING
        await asyncio.sleep(0.05)
        await job.close()  # shutdown: no status, nothing left behind
        assert seen == ["Uploading"] and job.status == diagnostics.IDLE
        assert not list((tmp_path / "diagnostics").iterdir())
        assert not job.start(LogRequest("mailto:ops@example.com", request_id=2)).canceled
        await job._task
        assert seen == ["Uploading", "BadMessage"] and job.status == diagnostics.IDLE


def test_logs_upload_stops_once_aborted(tmp_path, http_server):
    path = build_archive(tmp_path, start=None, stop=None, config_text=None, name="d.tar.gz")
    upload(path, f"{http_server.url}/upload/")
    assert "/upload/d.tar.gz" in http_server.uploads
    aborted = threading.Event()
    aborted.set()  # what LogUploadJob does to the transfer of a request it cancels
    with pytest.raises(UploadCanceled):
        upload(path, f"{http_server.url}/again/", abort=aborted)
