"""Tests of agent.runtime.message_log: the OCPP message log (extraction, redaction, size bound, queries)."""

import json
import os
import sqlite3
import stat
import threading
from datetime import datetime, timezone

import pytest

from agent.errors import StoreError
from agent.runtime.message_log import LoggedFrame, MessageLog, redact

SECRET = "S3cr3t-Value-0042"
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC/+abc=="
PEM_KEY = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"
CERT = "-----BEGIN CERTIFICATE-----\nMIIBpublicPART\n-----END CERTIFICATE-----"


@pytest.fixture
def log_path(tmp_path):
    return tmp_path / "data" / "messages.sqlite"


@pytest.fixture
def msglog(log_path):
    with MessageLog(log_path) as opened:
        yield opened


def frame(*parts) -> str:
    return json.dumps(list(parts))


def stored_frames(path) -> list[str]:
    """Every frame text in the file, read without the MessageLog code under test."""
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT frame FROM frames ORDER BY id")]


# --- extraction ------------------------------------------------------------------


def test_msglog_extracts_call_fields(msglog):
    text = frame(2, "m-1", "BootNotification", {"chargePointModel": "X"})
    msglog.append("out", text, timestamp=1.0)
    [row] = msglog.query()
    assert row == LoggedFrame(1.0, "out", "BootNotification", "m-1", 2, text)


def test_msglog_reply_takes_action_of_its_call(msglog):
    msglog.append("out", frame(2, "m-1", "BootNotification", {}))
    msglog.append("out", frame(2, "m-2", "Heartbeat", {}))
    msglog.append("in", frame(3, "m-1", {"status": "Accepted"}))
    msglog.append("in", frame(4, "m-2", "InternalError", "", {}))
    result, error = msglog.query(limit=2)[::-1]
    assert (result.direction, result.message_type, result.action) == ("in", 3, "BootNotification")
    assert (error.message_type, error.message_id, error.action) == (4, "m-2", "Heartbeat")


def test_msglog_same_id_in_both_directions_is_kept_apart(msglog):
    # Both ends may use "1" as a message id; a reply answers a CALL sent the other way.
    msglog.append("out", frame(2, "1", "StatusNotification", {}))
    msglog.append("in", frame(2, "1", "Reset", {"type": "Soft"}))
    msglog.append("out", frame(3, "1", {"status": "Accepted"}))
    msglog.append("in", frame(3, "1", {}))
    rows = msglog.query(limit=2)
    assert [(r.direction, r.action) for r in rows] == [
        ("in", "StatusNotification"), ("out", "Reset")]


def test_msglog_reply_without_known_call_has_no_action(msglog):
    msglog.append("in", frame(3, "never-sent", {}))
    [row] = msglog.query()
    assert (row.message_type, row.message_id, row.action) == (3, "never-sent", None)


@pytest.mark.parametrize("text", ["not json at all", '{"a": 1}', "[2]", '[9, "x", "Y", {}]',
                                  '[2, 7, "Heartbeat", {}]', "", "[" * 100_000])
def test_msglog_unparseable_frame_is_still_logged(msglog, text):
    msglog.append("in", text)
    [row] = msglog.query()
    assert (row.action, row.message_id, row.message_type, row.frame) == (None, None, None, text)


def test_msglog_unredacted_frame_is_kept_byte_for_byte(msglog):
    text = '[2,  "a",\t"Heartbeat", { }]'
    msglog.append("out", text)
    assert msglog.query()[0].frame == text


def test_msglog_rejects_unknown_direction(msglog):
    with pytest.raises(ValueError):
        msglog.append("sideways", frame(2, "a", "Heartbeat", {}))


# --- redaction -------------------------------------------------------------------

REDACTION_CASES = {
    "password keys at any depth": frame(2, "a", "DataTransfer", {
        "password": SECRET, "nested": {"basicAuthPassword": SECRET},
        "list": [{"privateKey": SECRET}], "clientSecret": SECRET, "AuthorizationKey": SECRET}),
    "1.6 ChangeConfiguration AuthorizationKey": frame(
        2, "a", "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET}),
    "1.6 GetConfiguration result": frame(3, "a", {"configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "AuthorizationKey", "readonly": False, "value": SECRET}]}),
    "2.0.1 SetVariables BasicAuthPassword": frame(2, "a", "SetVariables", {"setVariableData": [
        {"attributeValue": "60", "component": {"name": "OCPPCommCtrlr"},
         "variable": {"name": "HeartbeatInterval"}},
        {"attributeValue": SECRET, "component": {"name": "SecurityCtrlr"},
         "variable": {"name": "BasicAuthPassword"}}]}),
    "2.0.1 GetVariables result": frame(3, "a", {"getVariableResult": [
        {"attributeStatus": "Accepted", "attributeValue": SECRET,
         "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}]}),
    "2.0.1 NotifyReport": frame(2, "a", "NotifyReport", {
        "requestId": 1, "generatedAt": "2026-11-21T10:00:00Z", "seqNo": 0, "reportData": [
            {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
             "variableAttribute": [
                 {"type": "Actual", "value": SECRET, "mutability": "WriteOnly"}]}]}),
    "PEM private key in a string": frame(2, "a", "DataTransfer", {
        "vendorId": "x", "data": f"cert {CERT} key {PEM_KEY} end"}),
    "PEM private key in unparseable text": f"garbage {PEM_KEY} tail",
    "key name spelled with a JSON escape":
        '[2,"a","DataTransfer",{"pass\\u0077ord":"%s"}]' % SECRET,
}


@pytest.mark.parametrize("text", REDACTION_CASES.values(), ids=REDACTION_CASES.keys())
def test_redact_removes_secret(text):
    redacted = redact(text)
    assert SECRET not in redacted and PEM_BODY not in redacted
    assert "***" in redacted


@pytest.mark.parametrize("text", REDACTION_CASES.values(), ids=REDACTION_CASES.keys())
def test_msglog_never_stores_secret(msglog, log_path, text):
    msglog.append("in", text)
    for stored in stored_frames(log_path) + [msglog.query()[0].frame]:
        assert SECRET not in stored and PEM_BODY not in stored


def test_redact_keeps_structure_and_other_values():
    redacted = json.loads(redact(REDACTION_CASES["1.6 GetConfiguration result"]))
    assert redacted == [3, "a", {"configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "AuthorizationKey", "readonly": False, "value": "***"}]}]
    data = json.loads(redact(REDACTION_CASES["PEM private key in a string"]))[3]["data"]
    assert data == f"cert {CERT} key *** end"  # a certificate is public
    assert redact(f"garbage {PEM_KEY} tail") == "garbage *** tail"


def test_redact_scrubs_unterminated_private_key():
    assert PEM_BODY not in redact(f"x -----BEGIN PRIVATE KEY-----\n{PEM_BODY}")


# --- size bound ------------------------------------------------------------------


def test_msglog_stays_under_max_bytes_and_keeps_newest(log_path):
    max_bytes = 64 * 1024
    written = 0
    with MessageLog(log_path, max_bytes=max_bytes) as msglog:
        n = 0
        while written < 10 * max_bytes:
            text = frame(2, f"id-{n}", "MeterValues", {"pad": "x" * (n * 7 % 500)})
            msglog.append("out", text)
            written += len(text)
            n += 1
        newest = msglog.query(limit=1)[0]
    assert newest.message_id == f"id-{n - 1}"
    with sqlite3.connect(log_path) as conn:
        total, count = conn.execute(
            "SELECT sum(length(CAST(frame AS BLOB))), count(*) FROM frames").fetchone()
        ids = [row[0] for row in conn.execute("SELECT message_id FROM frames ORDER BY id")]
    assert 0.5 * max_bytes < total <= max_bytes
    assert ids == [f"id-{i}" for i in range(n - count, n)]  # the newest, without gaps


def test_msglog_size_bound_holds_across_reopen(log_path):
    max_bytes = 8 * 1024
    for _ in range(3):
        with MessageLog(log_path, max_bytes=max_bytes) as msglog:
            for n in range(100):
                msglog.append("in", frame(2, str(n), "Heartbeat", {"pad": "y" * 100}))
    with sqlite3.connect(log_path) as conn:
        total = conn.execute("SELECT sum(length(CAST(frame AS BLOB))) FROM frames").fetchone()[0]
    assert total <= max_bytes


# --- queries ---------------------------------------------------------------------


@pytest.fixture
def filled(msglog):
    rows = [
        (100.0, "out", frame(2, "a", "BootNotification", {"model": "Wallbox"})),
        (200.0, "in", frame(3, "a", {"status": "Accepted"})),
        (300.0, "out", frame(2, "b", "Heartbeat", {})),
        (400.0, "in", frame(2, "c", "RemoteStartTransaction", {"idTag": "04A1B2C3"})),
        (500.0, "out", frame(3, "c", {"status": "Accepted"})),
    ]
    for ts, direction, text in rows:
        msglog.append(direction, text, timestamp=ts)
    return msglog


def timestamps(rows):
    return [row.timestamp for row in rows]


def test_msglog_query_newest_first(filled):
    assert timestamps(filled.query()) == [500.0, 400.0, 300.0, 200.0, 100.0]


def test_msglog_query_time_range_is_inclusive(filled):
    assert timestamps(filled.query(since=200.0)) == [500.0, 400.0, 300.0, 200.0]
    assert timestamps(filled.query(until=300.0)) == [300.0, 200.0, 100.0]
    assert timestamps(filled.query(since=150.0, until=450.0)) == [400.0, 300.0, 200.0]


def test_msglog_query_action_ignores_case(filled):
    assert timestamps(filled.query(action="bootnotification")) == [200.0, 100.0]
    assert timestamps(filled.query(action="REMOTESTARTTRANSACTION")) == [500.0, 400.0]
    assert filled.query(action="Reset") == []


def test_msglog_query_direction(filled):
    assert timestamps(filled.query(direction="in")) == [400.0, 200.0]
    assert timestamps(filled.query(direction="out")) == [500.0, 300.0, 100.0]
    with pytest.raises(ValueError):
        filled.query(direction="both")


def test_msglog_query_grep_ignores_case(filled):
    assert timestamps(filled.query(grep="04a1b2")) == [400.0]
    assert timestamps(filled.query(grep="ACCEPTED")) == [500.0, 200.0]
    assert timestamps(filled.query(grep="100%")) == []  # no wildcard meaning


def test_msglog_query_limit(filled):
    assert timestamps(filled.query(limit=2)) == [500.0, 400.0]
    assert len(filled.query(limit=None)) == 5
    assert filled.query(limit=0) == []
    with pytest.raises(ValueError):
        filled.query(limit=-1)


def test_msglog_query_filters_combine(filled):
    rows = filled.query(direction="out", action="remotestarttransaction", since=450.0)
    assert [(r.timestamp, r.message_type) for r in rows] == [(500.0, 3)]


def test_logged_frame_json_dict():
    when = datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=timezone.utc).timestamp()
    row = LoggedFrame(when, "in", "Heartbeat", "m", 3, "[3,\"m\",{}]")
    assert row.to_json_dict() == {
        "timestamp": "2026-11-21T10:00:00.123Z", "direction": "in", "action": "Heartbeat",
        "message_id": "m", "message_type": 3, "frame": "[3,\"m\",{}]"}


# --- file handling ---------------------------------------------------------------


def test_msglog_file_is_not_world_readable(msglog, log_path):
    msglog.append("out", frame(2, "a", "Heartbeat", {}))
    assert stat.S_IMODE(os.stat(log_path).st_mode) == 0o640


def test_msglog_readonly_queries_a_live_log(msglog, log_path):
    msglog.append("out", frame(2, "a", "Heartbeat", {}))
    with MessageLog(log_path, readonly=True) as reader:
        assert [r.action for r in reader.query()] == ["Heartbeat"]
        msglog.append("out", frame(2, "b", "Heartbeat", {}))
        assert len(reader.query()) == 2


def test_msglog_rejects_other_files(tmp_path):
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00not a database\xff" * 500)
    with pytest.raises(StoreError, match="garbage.sqlite"):
        MessageLog(garbage)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StoreError, match="not an OCPP message log"):
        MessageLog(other, readonly=True)


def test_msglog_write_failure_is_logged_not_raised(log_path, caplog):
    with MessageLog(log_path) as msglog:
        msglog.append("out", frame(2, "a", "Heartbeat", {}))
    # A reader-only handle cannot write: stands in for a full or failing disk.
    with MessageLog(log_path, readonly=True) as broken:
        broken.append("out", frame(2, "b", "Heartbeat", {}))
        broken.append("out", frame(2, "c", "Heartbeat", {}))
    warnings = [r for r in caplog.records if "cannot write a frame" in r.getMessage()]
    assert len(warnings) == 1


def test_msglog_append_from_several_threads(msglog):
    def worker(name):
        for n in range(50):
            msglog.append("out", frame(2, f"{name}-{n}", "Heartbeat", {}))

    threads = [threading.Thread(target=worker, args=(name,)) for name in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(msglog.query(limit=None)) == 200


def test_msglog_delete_matching_removes_only_the_chosen_frames(log_path):
    with MessageLog(log_path) as msglog:
        msglog.append("in", frame(2, "a", "Authorize", {"idToken": {"idToken": "card-1"}}))
        msglog.append("in", frame(2, "b", "Authorize", {"idToken": {"idToken": "CARD-12"}}))
        msglog.append("out", frame(2, "c", "Heartbeat", {}))
        total = msglog._total
        exact = lambda text: '"card-1"' in text.lower()  # noqa: E731 (a one-line predicate)
        assert msglog.delete_matching("CARD-1", also=exact) == 1
        assert [f.message_id for f in msglog.query()] == ["c", "b"]
        assert msglog._total == total - len(frame(2, "a", "Authorize", {"idToken": {"idToken": "card-1"}}))
        assert msglog.delete_matching("card") == 1  # without a predicate: every frame containing it
        assert msglog.delete_matching("nowhere") == 0
    assert stored_frames(log_path) == [frame(2, "c", "Heartbeat", {})]


def test_msglog_delete_matching_fails_as_store_error_once_closed(msglog):
    msglog.close()
    with pytest.raises(StoreError, match="closed"):
        msglog.delete_matching("x")
