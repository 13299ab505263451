"""The implementation statement is derived from the code and covers every OCPP message."""

import subprocess
import sys

import pytest
from ocpp.routing import on
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201
from ocpp.v21.enums import Action as Action21

from agent.commands import pics
from agent.protocol.common.catalog import messages
from tests import REPO_ROOT


#: 2.1's SEND NotifyPeriodicEventStream is the one 2.1 message the library's Action enum lacks.
_ACTIONS = {"1.6": {a.value for a in Action16}, "2.0.1": {a.value for a in Action201},
            "2.1": {a.value for a in Action21} | {"NotifyPeriodicEventStream"}}


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_pics_catalog_lists_every_message_of_the_version_once(version):
    names = [action for action, _, _ in messages(version)]
    assert len(names) == len(set(names))
    assert set(names) == _ACTIONS[version]


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


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
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


def test_pics_21_lists_91_messages_each_with_a_reason_when_not_offered():
    rows = {r["action"]: r for r in pics.support_table("2.1")}
    assert len(rows) == 91
    assert [a for a, r in rows.items() if not r["supported"] and not r["why_not"]] == []
    # Everything 2.0.1 supports, 2.1 supports; what 2.1 adds is offered (streams), refused, planned ("not yet")
    # or by design.
    streams = {"OpenPeriodicEventStream", "ClosePeriodicEventStream", "NotifyPeriodicEventStream",
               "GetPeriodicEventStream", "AdjustPeriodicEventStream"}
    assert all(rows[a]["supported"] for a in streams)
    tariffs = {"SetDefaultTariff", "GetTariffs", "ClearTariffs", "ChangeTransactionTariff"}
    assert all(rows[a]["supported"] for a in tariffs)
    dynamic = {"UpdateDynamicSchedule", "PullDynamicScheduleUpdate"}
    assert all(rows[a]["supported"] for a in dynamic)
    priority = {"UsePriorityCharging", "NotifyPriorityCharging"}
    assert all(rows[a]["supported"] for a in priority)
    assert {a for a, r in rows.items() if r["supported"]} - streams - tariffs - priority - dynamic == {
        r["action"] for r in pics.support_table("2.0.1") if r["supported"]}
    assert "V2X" in rows["AFRRSignal"]["why_not"] and "DER" in rows["SetDERControl"]["why_not"]
    assert "| RequestBatterySwap | CSMS | S Battery Swapping | no (a battery swap station's) |" in pics.render_pics("2.1")


def test_pics_cli_prints_21():
    result = subprocess.run([sys.executable, "-m", "agent", "pics", "--ocpp", "2.1"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and "of 91 messages supported" in result.stdout
