"""One meaning for the message log's filters: ``ocpp-agent log`` (MessageLog.query) and the dashboard
(agent.web.logdb.LogReader) find the same frames for the same filters, on a real SQLite log."""

from __future__ import annotations

import json

import pytest

from agent.runtime.log_filters import filter_clause
from agent.runtime.message_log import MessageLog
from agent.web.logdb import LOG_FILE, LogFilter, LogReader


@pytest.fixture
def data_dir(tmp_path):
    with MessageLog(tmp_path / LOG_FILE) as log:
        for n in range(40):
            action = ("Heartbeat", "StatusNotification", "Authorize")[n % 3]
            text = json.dumps([2, f"m{n}", action, {"idTag": "04A1B2C3"} if action == "Authorize" else {}])
            log.append("out" if n % 2 else "in", text, timestamp=1_000.0 + n)
    return tmp_path


FILTERS = [
    {},
    {"action": "heartbeat"},
    {"direction": "in"},
    {"grep": "04a1"},
    {"since": 1_010.0, "until": 1_020.0},
    {"action": "Authorize", "direction": "out", "since": 1_005.0},
]


@pytest.mark.parametrize("filters", FILTERS)
def test_log_filters_mean_the_same_on_the_command_line_and_the_dashboard(data_dir, filters):
    with MessageLog(data_dir / LOG_FILE, readonly=True) as log:
        on_the_command_line = [frame.message_id for frame in log.query(limit=None, **filters)]
    on_the_dashboard = [row.frame.message_id for row in LogReader(data_dir).page(LogFilter(**filters), limit=100)]
    assert on_the_dashboard == on_the_command_line and on_the_command_line  # each filter finds something


def test_log_filters_without_a_filter_is_no_where_clause_and_cursors_bound_the_ids():
    assert filter_clause() == ("", [])
    assert filter_clause(grep="") == ("", [])
    assert filter_clause(before_id=10, after_id=3) == (" WHERE id < ? AND id > ?", [10, 3])
