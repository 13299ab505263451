"""Every OCPP dateTime the adapters read goes through one parser (``agent.runtime.clock.unix_time``).

OCPP means UTC by a dateTime without an offset. ``datetime.fromisoformat(x).timestamp()`` reads such
a value as the board's local time instead, so these tests run with the board in New York: each reader
must still give the UTC instant.
"""

from __future__ import annotations

import ast
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.protocol.common.rpc import validate
from agent.protocol.v16 import codec as codec16
from agent.protocol.v16.adapter import Ocpp16Adapter
from agent.protocol.v16.smart_charging import profile_from_16
from agent.protocol.v201 import codec as codec201
from agent.protocol.v201.adapter import Ocpp201Adapter
from agent.protocol.v201.display import message_from_201
from agent.protocol.v201.smart_charging import profile_from_201
from tests import REPO_ROOT

WITHOUT_OFFSET = "2030-06-01T12:00:00"
AT_UTC = datetime(2030, 6, 1, 12, tzinfo=timezone.utc).timestamp()
PROTOCOL = REPO_ROOT / "agent" / "protocol"


@pytest.fixture
def board_in_new_york(monkeypatch):
    """The board's local time zone is New York (UTC-4 on that June day), restored afterwards."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    # Guard: in this zone the local-time reading is wrong, so each test below can fail.
    assert datetime.fromisoformat(WITHOUT_OFFSET).timestamp() == AT_UTC + 4 * 3600
    yield
    monkeypatch.undo()
    time.tzset()


def _schedule(**extra) -> dict:
    return {"charging_rate_unit": "A", "start_schedule": WITHOUT_OFFSET,
            "charging_schedule_period": [{"start_period": 0, "limit": 16.0}], **extra}


def test_date_times_in_a_16_charging_profile_are_utc(board_in_new_york):
    profile = profile_from_16(
        {"charging_profile_id": 1, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
         "charging_profile_kind": "Absolute", "valid_from": WITHOUT_OFFSET, "valid_to": WITHOUT_OFFSET,
         "charging_schedule": _schedule()}, evse_id=1, transaction_ref=None)
    assert (profile.schedule.start_schedule, profile.valid_from, profile.valid_to) == (AT_UTC, AT_UTC, AT_UTC)


def test_date_times_in_a_201_charging_profile_are_utc(board_in_new_york):
    profile = profile_from_201(
        {"id": 1, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
         "charging_profile_kind": "Absolute", "valid_from": WITHOUT_OFFSET, "valid_to": WITHOUT_OFFSET,
         "charging_schedule": [_schedule(id=1)]}, evse_id=1, transaction_ref=None)
    assert (profile.schedule.start_schedule, profile.valid_from, profile.valid_to) == (AT_UTC, AT_UTC, AT_UTC)


def test_date_times_of_an_id_token_expiry_are_utc_in_both_versions(board_in_new_york):
    info16 = codec16.id_token_info({"status": "Accepted", "expiry_date": WITHOUT_OFFSET})
    info201 = codec201.id_token_info({"status": "Accepted", "cache_expiry_date_time": WITHOUT_OFFSET})
    assert (info16.expiry, info201.expiry) == (AT_UTC, AT_UTC)


def test_date_times_of_a_display_message_are_utc(board_in_new_york):
    message = message_from_201({"id": 1, "priority": "NormalCycle",
                                "message": {"format": "UTF8", "content": "hello"},
                                "start_date_time": WITHOUT_OFFSET, "end_date_time": WITHOUT_OFFSET})
    assert (message.start, message.end) == (AT_UTC, AT_UTC)


class _ReservingStation:
    """Just enough of the station for ReserveNow: it keeps the reservation it was handed."""

    def __init__(self):
        self.reservation = None

    async def reserve(self, reservation, **_):
        self.reservation = reservation
        return SimpleNamespace(value="Accepted")


async def test_date_times_of_a_reservation_expiry_are_utc_in_both_versions(board_in_new_york):
    station16, station201 = _ReservingStation(), _ReservingStation()
    adapter16 = SimpleNamespace(core=SimpleNamespace(station=station16),
                                settings={"reserve_connector_zero_supported": True})
    adapter201 = SimpleNamespace(core=SimpleNamespace(station=station201), settings={})
    await Ocpp16Adapter.on_reserve_now(adapter16, connector_id=1, expiry_date=WITHOUT_OFFSET, id_tag="tag",
                                       reservation_id=7)
    await Ocpp201Adapter.on_reserve_now(adapter201, id=7, expiry_date_time=WITHOUT_OFFSET,
                                        id_token={"id_token": "tag", "type": "ISO14443"})
    assert (station16.reservation.expiry, station201.reservation.expiry) == (AT_UTC, AT_UTC)


def test_date_times_the_schema_check_accepts_are_those_the_parser_reads():
    # The format check uses the parser itself, so no handler meets a dateTime it cannot read.
    assert validate("2.0.1", 2, "ReserveNow", {"id": 1, "expiryDateTime": WITHOUT_OFFSET,
                                                "idToken": {"idToken": "tag", "type": "ISO14443"}}) is None
    problem = validate("2.0.1", 2, "ReserveNow", {"id": 1, "expiryDateTime": "2030-06-01T25:00:00Z",
                                                   "idToken": {"idToken": "tag", "type": "ISO14443"}})
    assert problem == ("property", "expiryDateTime: not a valid date-time")


def fromisoformat_calls(root: Path) -> list[str]:
    """``path:line`` of every ``fromisoformat`` use in the Python files below ``root``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "fromisoformat":
                found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
            elif isinstance(node, ast.ImportFrom) and any(a.name == "fromisoformat" for a in node.names):
                found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return found


def test_date_times_no_protocol_module_parses_one_itself():
    assert fromisoformat_calls(PROTOCOL) == []


def test_date_times_the_scan_finds_a_parser_of_its_own(tmp_path):
    (tmp_path / "v21").mkdir()
    (tmp_path / "v21" / "codec.py").write_text(
        "from datetime import datetime\n\ndef _ts(v):\n    return datetime.fromisoformat(v).timestamp()\n")
    assert fromisoformat_calls(tmp_path) == ["v21/codec.py:4"]
