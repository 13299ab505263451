"""Firmware and log transfers in a running agent: a job wired with the test's install command, a signed
FirmwareType, the security events a transfer left, and the members of an uploaded log archive."""

from __future__ import annotations

import io
import sys
import tarfile
import time

from agent.core.management.firmware import FirmwareJob
from agent.core.management.security_events import SECURITY_EVENT
from agent.runtime.clock import format_iso
from tests.harness.transfer_servers import IMAGE


def marker_installer(marker, *, exit_status: int = 0, seconds: float = 0.0):
    """An install command that copies the image (appended as the last argument) to ``marker``,
    after ``seconds``, then exits with ``exit_status``."""
    code = (f"import shutil, sys, time; time.sleep({seconds}); shutil.copyfile(sys.argv[2], sys.argv[1]);"
            f" sys.exit({exit_status})")
    return [sys.executable, "-c", code, str(marker)]


def wire(agent_, tmp_path, install_command, config_text: str | None = None):
    """Replace the app's job with one using the test's install command and a fast poll (before the first await)."""
    core = agent_.core
    core.data_dir = agent_.config.station.data_dir
    core.firmware = FirmwareJob(core.store, core.data_dir, install_command=install_command,
                                busy=core.station.busy, poll_s=0.05, clock=agent_.clock.time)
    if config_text is not None:
        path = tmp_path / "agent.toml"
        path.write_text(config_text)
        core.config_path = str(path)
    return core.firmware


def firmware_type(url, signer, *, image=IMAGE, retrieve_in_s=0.0, install_in_s=None):
    """A FirmwareType for an image at ``url`` signed by ``signer`` (None: unsigned)."""
    firmware = {"location": url, "retrieve_date_time": format_iso(time.time() + retrieve_in_s)}
    if install_in_s is not None:
        firmware["install_date_time"] = format_iso(time.time() + install_in_s)
    if signer is not None:
        firmware.update(signing_certificate=signer.pem, signature=signer.sign(image))
    return firmware


def security_events(agent_, csms):
    """(type, techInfo) of the security events the CSMS received or the outbox still holds.

    The simulated 1.6 CSMS refuses SecurityEventNotification, so an event may be in both.
    """
    sent = {(r.payload["type"], r.payload.get("techInfo")) for r in csms.calls("SecurityEventNotification")}
    return sent | {(i.payload["type"], i.payload["tech_info"]) for i in agent_.store.outbox.pending()
                   if i.action == SECURITY_EVENT}


def security_event_types(agent_, csms):
    """The types of ``security_events``."""
    return [kind for kind, _ in security_events(agent_, csms)]


def archive_members(data: bytes) -> dict[str, str]:
    """Name -> text of every member of a ``.tar.gz`` log archive."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read().decode() for m in archive.getmembers()}
