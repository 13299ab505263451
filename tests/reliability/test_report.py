"""The generator of docs/RELIABILITY.md: every part rendered, goals judged, known bugs listed."""

import copy
import json

import pytest

from tests.reliability.figures import Figures
from tests.reliability.power_cuts import CampaignResult
from tests.reliability.report import main, render


@pytest.fixture
def run() -> dict:
    """The figures of a (tiny) full run, recorded the way the tests record them."""
    figures = Figures()
    power = CampaignResult(version="1.6", cuts={"mid_call": 2}, kills=3, journal=2, started_at_csms=2, exactly_once=2,
                           lost=[], duplicated=[], retransmitted=1, meter_violations=[], register_setbacks=0)
    figures.record("power_cuts", "full 1.6", **power.figures())
    figures.record("network_faults", "full 2.0.1", version="2.0.1", transactions=3, exactly_once=3,
                   identical_retransmissions=0, half_open_detected_s=[1.7], backoff_delays_s=[[1.0, 2.0]],
                   back_online_s=[0.8], faults={"drop": {"injected": 2, "recovered": 2, "reconnects": 2,
                                                         "max_recovery_s": 1.3}})
    figures.record("fuzzing", "full 1.6", version="1.6", frames=100, by_category={"invalid_json": 100},
                   answers_expected=100, wrong_answers=0, process_exits=0, connection_drops=0,
                   known_bug_answers={}, largest_frame_bytes=10, normal_session_after=True, seed=7, seconds=1.0,
                   wrong_examples=[], log_bytes=10, longest_log_line_bytes=10)
    figures.record("hardware_faults", "full 1.6 rcd-trip", version="1.6", fault="rcd-trip", phases=[
        {"phase": "charging", "reported": "Faulted GroundFailure", "after_clear": "Available NoError",
         "notify_event": None, "outputs_safe": True, "stop_reason": "Other", "recovered": True}])
    cycle = {"reported_s": 0.3, "start_refused": True, "tap_refused_on_display": True,
             "refused_tap_closed_contactor": False, "kept_charging": True, "held": 5, "cleared_s": 2.1, "held_after": 0}
    figures.record("storage_faults", "full 1.6", version="1.6", cycles=[cycle, cycle], records=30, duplicated=0,
                   in_order=True, largest_gap_s=1.1, sigterm={"charging_before": True, "exit_status": 0,
                                                              "outputs_safe_logged": True, "traceback": False})
    figures.record("clock_faults", "full 2.0.1", version="2.0.1", scenarios=[
        {"scenario": "stepped 3 days after the sync", "board_error_s": 259200, "start_error_s": 0.2,
         "end_error_s": 0.1, "setting_system_time_events": 1, "expected_events": 1, "traceback": False}])
    figures.record("security", "full refusal expired_certificate 1.6", case="expired_certificate", version="1.6",
                   refused=True, reason_reported=True, attempts=2, stayed_up=True, clean_exit=True,
                   password_in_journal=False)
    figures.record("security", "full control", profile_2_and_3_connect=True)
    figures.record("security", "secrets 1.6", version="1.6", places={"journal": 10}, secrets=["config password"],
                   leaks=[], world_accessible=[])
    figures.record("soak", "full 1.6", version="1.6", seconds=60, sessions=4, transactions=4, exactly_once=4, lost=0,
                   duplicated=0, meter_values=100, rss_kib_after_warmup=40000, rss_kib_end=40100,
                   rss_growth_kib=100, threads_after_warmup=3, threads_late_max=3, fds_after_warmup=15,
                   fds_late_max=15, log_bound_bytes=8192, log_stored_max_bytes=8000, log_rows_trimmed=10,
                   log_file_bytes_end=100, log_file_bytes_half=100, samples=12)
    figures.outcome("tests/reliability/test_x.py::test_ok", "passed", 1.0)
    figures.outcome("tests/reliability/test_x.py::test_bug[1.6]", "xfailed", 1.0, "bug: the thing breaks")
    return json.loads(json.dumps(figures.to_json()))


def test_report_renders_every_part_against_its_goal(run):
    page = render(run)
    for title in ("Power cuts", "Network faults", "Protocol fuzzing", "Hardware faults", "Storage faults",
                  "Clock faults", "Security", "Soak"):
        assert f"## {title}" in page
    assert "NOT MET" not in page and page.count(": met") >= 4
    assert "**3 SIGKILLs**" in page and "**2 faults injected, 2 recovered**" in page
    assert "**2 full disks**" in page and "| full 1.6 | 2 | 0.3 ×2 | 2.1 ×2 | 2 | 2 | 5 | 30 | 0 | yes | 1.1 | 0 | yes |" in page
    assert "| 2.0.1 | stepped 3 days after the sync | 3 days | 0.2 | 0.1 | 1 (expected 1) |" in page
    assert "- bug: the thing breaks (`test_bug[1.6]`)" in page
    assert "Machine: " in page and "Software: " in page
    assert "Tests: passed 1, xfailed 1." in page


def test_report_says_which_goal_was_missed_and_what_did_not_run(run):
    missed = copy.deepcopy(run)
    missed["parts"]["power_cuts"]["full 1.6"]["lost"] = 1
    missed["parts"]["storage_faults"]["full 1.6"]["sigterm"]["exit_status"] = 1
    del missed["parts"]["soak"]
    page = render(missed)
    assert "**NOT MET**" in page.split("## Power cuts")[1].split("##")[0]
    assert "**NOT MET**" in page.split("## Storage faults")[1].split("##")[0]
    assert "## Soak\n\nNot run." in page


def test_report_smoke_figures_give_way_to_full_ones(run):
    run["parts"]["power_cuts"]["smoke 2.0.1"] = dict(run["parts"]["power_cuts"]["full 1.6"], sigkills=50)
    assert "| smoke 2.0.1 |" not in render(run)
    del run["parts"]["power_cuts"]["full 1.6"]
    assert "| smoke 2.0.1 |" in render(run)


def test_report_command_writes_the_page(tmp_path, run, capsys):
    source = tmp_path / "figures.json"
    source.write_text(json.dumps(run))
    assert main([str(source), str(tmp_path / "RELIABILITY.md")]) == 0
    assert (tmp_path / "RELIABILITY.md").read_text().startswith("# Reliability, security and fault injection")
    assert main([str(tmp_path / "missing.json")]) == 1
