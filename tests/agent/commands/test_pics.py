"""The implementation statement is derived from the code and covers every OCPP message."""

import subprocess
import sys

import pytest
from ocpp.routing import on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201

from agent.commands import pics
from agent.protocol.common.catalog import messages
from tests import REPO_ROOT


@pytest.mark.parametrize("version, enum", [("1.6", Action16), ("2.0.1", Action201)])
def test_pics_catalog_lists_every_message_of_the_version_once(version, enum):
    names = [action for action, _, _ in messages(version)]
    assert len(names) == len(set(names))
    assert set(names) == {a.value for a in enum}


def test_pics_support_follows_the_handler_tables(monkeypatch):
    rows = {r["action"]: r for r in pics.support_table("2.0.1")}
    assert rows["BootNotification"]["supported"] and rows["Heartbeat"]["supported"]
    assert not rows["PublishFirmware"]["supported"]  # local-controller only: not this station's

    from agent.protocol.v201 import adapter as v201

    class WithPublishFirmware(v201.Ocpp201Adapter):
        @on("PublishFirmware")
        def on_publish_firmware(self, **_):
            raise NotImplementedError

    monkeypatch.setattr(pics, "adapter_class", lambda version: WithPublishFirmware)
    assert {r["action"]: r for r in pics.support_table("2.0.1")}["PublishFirmware"]["supported"]


def test_pics_16_supports_every_csms_message():
    """Every 1.6 profile and the security extension: nothing the CSMS can send is left unanswered."""
    rows = pics.support_table("1.6")
    assert all(r["supported"] for r in rows if r["initiator"] == "CSMS"), [
        r["action"] for r in rows if r["initiator"] == "CSMS" and not r["supported"]]


def test_pics_cli_prints_a_table():
    result = subprocess.run([sys.executable, "-m", "agent", "pics", "--ocpp", "2.0.1"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "| TransactionEvent | Charging Station | E Transactions |" in result.stdout
    assert "of 64 messages supported" in result.stdout


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_pics_documents_match_the_code(version):
    """docs/PICS-*.md are generated; regenerate with `make docs` when this fails."""
    from pathlib import Path

    path = REPO_ROOT / "docs" / f"PICS-{version}.md"
    assert path.read_text() == pics.render_pics(version) + "\n", f"{path.name} is stale: run `make docs`"


def test_pics_explains_every_201_message_it_does_not_offer():
    rows = pics.support_table("2.0.1")
    unexplained = [r["action"] for r in rows if not r["supported"] and not r["why_not"]]
    assert unexplained == []
    assert "| PublishFirmware | CSMS | L Firmware Management | no (a local controller's) |" in pics.render_pics("2.0.1")
