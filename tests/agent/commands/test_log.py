"""Tests of agent.commands.log: the body of `ocpp-agent log`."""

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from agent.commands.log import parse_time, run_log_command
from agent.runtime.message_log import MessageLog

NOW = 1_800_000_000.0


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "messages.sqlite"
    with MessageLog(path) as msglog:
        boot = '[2,"a","BootNotification",{"chargePointModel":"Wallbox"}]'
        msglog.append("out", boot, timestamp=NOW - 300)
        msglog.append("in", '[3,"a",{"status":"Accepted","interval":300}]', timestamp=NOW - 299)
        long_frame = json.dumps([2, "b", "MeterValues", {"pad": "z" * 500}])
        msglog.append("out", long_frame, timestamp=NOW - 60)
        msglog.append("in", "not json\x1b[31m", timestamp=NOW - 10)
    return path


def run(log_path, **options):
    out = io.StringIO()
    status = run_log_command(db_path=log_path, out=out, **options)
    return status, out.getvalue().splitlines()


# --- parse_time ------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2026-11-21T10:00:00Z", datetime(2026, 11, 21, 10, tzinfo=timezone.utc)),
    ("2026-11-21T10:00:00.250Z", datetime(2026, 11, 21, 10, 0, 0, 250000, tzinfo=timezone.utc)),
    ("2026-11-21T11:00:00+01:00", datetime(2026, 11, 21, 10, tzinfo=timezone.utc)),
    ("2026-11-21T10:00:00", datetime(2026, 11, 21, 10)),  # naive: local time
    (" 2026-11-21 10:00 ", datetime(2026, 11, 21, 10)),
])
def test_parse_time_iso(text, expected):
    assert parse_time(text, now=NOW) == expected.timestamp()


@pytest.mark.parametrize("text, seconds", [
    ("10m", 600), ("2h", 7200), ("1d", 86400), ("30s", 30), ("1w", 604800),
    ("1.5h", 5400), ("2H", 7200),
])
def test_parse_time_relative(text, seconds):
    assert parse_time(text, now=NOW) == NOW - seconds


def test_parse_time_relative_defaults_to_now():
    before = datetime.now().timestamp()
    assert before - 600 - 1 <= parse_time("10m") <= datetime.now().timestamp() - 600


@pytest.mark.parametrize("text", ["yesterday", "10x", "", "-5m", "2026-13-01T00:00:00"])
def test_parse_time_bad_value(text):
    with pytest.raises(ValueError, match="ISO 8601.*10m"):
        parse_time(text, now=NOW)


# --- table and JSON output --------------------------------------------------------


def test_log_command_prints_table_newest_first(log_path):
    status, lines = run(log_path)
    assert status == 0
    header, *rows = lines
    assert header.split()[:4] == ["TIME", "DIR", "TYPE", "ACTION"]
    assert len(rows) == 4
    assert all(len(line) <= 120 for line in lines)
    # Columns line up: every row's frame starts where the header's FRAME does.
    start = header.index("FRAME")
    assert rows[0][start:] == "not json\\x1b[31m"  # control characters never reach the terminal
    assert rows[1][start:].startswith('[2, "b", "MeterValues"') and rows[1].endswith("…")
    assert "→" in rows[1] and "RESULT" in rows[2] and "BootNotification" in rows[2]
    assert rows[3][start:].startswith('[2,"a","BootNotification"')
    local = datetime.fromtimestamp(NOW - 300).strftime("%Y-%m-%d %H:%M:%S")
    assert rows[3].startswith(local)


def test_log_command_json_lines(log_path):
    status, lines = run(log_path, as_json=True, limit=None)
    assert status == 0
    objects = [json.loads(line) for line in lines]
    keys = {"timestamp", "direction", "action", "message_id", "message_type", "frame"}
    assert all(set(obj) == keys for obj in objects)
    assert [obj["direction"] for obj in objects] == ["in", "out", "in", "out"]
    assert objects[2] == {
        "timestamp": datetime.fromtimestamp(NOW - 299, timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"),
        "direction": "in", "action": "BootNotification", "message_id": "a", "message_type": 3,
        "frame": '[3,"a",{"status":"Accepted","interval":300}]',
    }
    assert objects[0]["message_type"] is None and objects[0]["action"] is None


def test_log_command_passes_filters(log_path):
    status, lines = run(log_path, as_json=True, action="bootnotification", direction="in")
    assert status == 0 and [json.loads(line)["message_type"] for line in lines] == [3]
    _, lines = run(log_path, as_json=True, grep="wallbox")
    assert [json.loads(line)["message_id"] for line in lines] == ["a"]
    _, lines = run(log_path, as_json=True, limit=1)
    assert len(lines) == 1
    _, lines = run(log_path, as_json=True, since=NOW - 100, until=NOW - 20)
    assert [json.loads(line)["action"] for line in lines] == ["MeterValues"]


def test_log_command_accepts_time_text(log_path):
    since = datetime.fromtimestamp(NOW - 100, timezone.utc).isoformat()
    _, lines = run(log_path, as_json=True, since=since)
    assert len(lines) == 2
    # Ages that do not depend on today's date: 100000 weeks ago is before every row.
    assert len(run(log_path, as_json=True, since="100000w")[1]) == 4
    assert run(log_path, as_json=True, until="100000w")[1] == []


def test_log_command_no_rows_exits_zero(log_path, capsys):
    status, lines = run(log_path, action="Reset")
    assert (status, lines) == (0, [])
    assert "no matching frames" in capsys.readouterr().err


def test_log_command_missing_database(tmp_path, capsys):
    missing = tmp_path / "nope.sqlite"
    status, lines = run(missing)
    assert (status, lines) == (1, [])
    assert capsys.readouterr().err.strip() == f"no message log at {missing}"
    assert not missing.exists()


def test_log_command_bad_time_is_a_usage_error(log_path, capsys):
    status, lines = run(log_path, since="last tuesday")
    assert (status, lines) == (2, [])
    assert "--since" in capsys.readouterr().err


def test_log_command_unreadable_log_exits_one(tmp_path, capsys):
    garbage = tmp_path / "messages.sqlite"
    garbage.write_bytes(b"garbage" * 1000)
    assert run(garbage)[0] == 1
    assert str(garbage) in capsys.readouterr().err


def test_log_command_table_falls_back_to_ascii(log_path):
    class AsciiOut(io.StringIO):
        encoding = "ascii"

    out = AsciiOut()
    assert run_log_command(db_path=log_path, out=out) == 0
    out.getvalue().encode("ascii")
    assert "->" in out.getvalue() and "<-" in out.getvalue()


def test_log_command_reads_the_log_without_writing(log_path):
    before = log_path.stat().st_mtime_ns
    run(log_path)
    assert log_path.stat().st_mtime_ns == before
    # A naive time one hour ago, in local time, also works end to end.
    naive = (datetime.now() - timedelta(hours=1)).isoformat(timespec="seconds")
    assert run(log_path, since=naive)[0] == 0
