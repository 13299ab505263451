"""Write docs/RELIABILITY.md from the figures of a reliability run.

Usage: ``python -m tests.reliability.report FIGURES.json [OUT.md]`` (``make reliability`` runs it).
The page is generated: what each part injected and counted, against its goal, the run's machine
and versions, and the known bugs (strict-xfail tests) with their reasons.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "RELIABILITY.md"
TITLES = {
    "power_cuts": "Power cuts",
    "network_faults": "Network faults",
    "fuzzing": "Protocol fuzzing",
    "hardware_faults": "Hardware faults",
    "storage_faults": "Storage faults",
    "clock_faults": "Clock faults",
    "security": "Security",
    "soak": "Soak",
}


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _cell(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "**no**"
    if value is None:
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _runs(values: list[float]) -> str:
    """``1.0, 2.0, 8.0 ×3``: a list with repeats (to 0.1) folded."""
    folded: list[list] = []
    for value in values:
        value = round(value, 1)
        if folded and folded[-1][0] == value:
            folded[-1][1] += 1
        else:
            folded.append([value, 1])
    return ", ".join(f"{v} ×{n}" if n > 1 else f"{v}" for v, n in folded) or "–"


def _goal(ok: bool) -> str:
    return "met" if ok else "**NOT MET**"


def _figures(parts: dict, part: str) -> dict[str, dict]:
    """The full-size figures of a part if the run has them, else whatever it has (a smoke run)."""
    figures = parts.get(part, {})
    if not any(name.startswith("full") for name in figures):
        return figures
    return {name: f for name, f in figures.items() if not name.startswith("smoke")}


def _power_cuts(figures: dict) -> list[str]:
    rows, kills, lost, duplicated, violations = [], 0, 0, 0, 0
    for name, f in figures.items():
        kills += f["sigkills"]
        lost += f["lost"]
        duplicated += f["duplicated"]
        violations += f["meter_monotonic_violations"]
        rows.append([name, f["cuts"], f["sigkills"], f["transactions_begun"], f["started_at_csms"],
                     f["started_and_ended_exactly_once"], f["lost"], f["duplicated"], f["identical_retransmissions"],
                     f["meter_monotonic_violations"], f["register_setbacks_across_cuts"]])
    return [
        "The real daemon is SIGKILLed at random points of sessions: mid-session, within 30 ms of an input that "
        "journals a start or a stop (mid-write), when the CSMS receives the n-th transaction CALL before or just "
        "after it answers (mid-CALL), while the CSMS refuses connections (offline) and while the outbox is "
        "replayed. The CSMS's books are then audited against the agent's own journal.",
        "",
        f"**{kills} SIGKILLs** in all. Goal: lost 0 and duplicated 0, energy readings never going down within a "
        f"transaction: {_goal(lost == 0 and duplicated == 0 and violations == 0)}.",
        "",
        *_table(["campaign", "cuts by kind", "SIGKILLs", "transactions begun", "started at CSMS",
                 "started and ended exactly once", "lost", "duplicated", "identical resends",
                 "readings going down", "register set back by a cut"], rows),
        "Identical resends are at-least-once delivery (a cut between the CSMS's answer and the agent's commit); "
        "the CSMS recognises them. \"Register set back by a cut\" counts sessions whose meterStart is below the "
        "previous meterStop: the mock meter saves its register once a second, so a SIGKILL loses up to a "
        "second of energy (a real meter keeps its register itself).",
        "",
    ]


def _network(figures: dict) -> list[str]:
    rows, injected, recovered, extra = [], 0, 0, []
    for name, f in figures.items():
        for kind, c in f["faults"].items():
            injected += c["injected"]
            recovered += c["recovered"]
            rows.append([name, kind, c["injected"], c["recovered"], c["reconnects"], c["max_recovery_s"]])
        longest = max(f["backoff_delays_s"], key=len, default=[])
        extra.append(f"- {name}: {f['transactions']} transactions, {f['exactly_once']} exactly once, "
                     f"{f['identical_retransmissions']} identical resends; half-open links found after "
                     f"{_runs(f['half_open_detected_s'])} s; waits between attempts in the longest refusal "
                     f"{_runs(longest)} s; connected again {_runs(f['back_online_s'])} s after the CSMS returned.")
    return [
        "Each fault hits a charging session (in-process agent, real WebSocket CSMS and SQLite outbox): the CSMS "
        "restarting, cutting the TCP connection instead of answering a transaction CALL, a link that goes silent "
        "without closing (found by ping/pong: WebSocketPingInterval 1 s, ping timeout 1 s), answers late (beyond "
        "the 1.5 s response timeout), twice, or after replies with unknown message ids, and refusing every "
        "connection for a while. Recovered means: connected again, outbox drained, every transaction exactly once "
        "at the CSMS and delivered in order; faults that leave the connection up must not cause a reconnect.",
        "",
        f"**{injected} faults injected, {recovered} recovered**: {_goal(injected == recovered)}.",
        "",
        *_table(["run", "fault", "injected", "recovered", "reconnects", "longest, fault to recovered (s)"], rows),
        *extra, "",
    ]


def _fuzzing(figures: dict) -> list[str]:
    rows, frames, wrong, crashes = [], 0, 0, 0
    categories = []
    for name, f in figures.items():
        frames += f["frames"]
        wrong += f["wrong_answers"]
        crashes += f["process_exits"] + f["connection_drops"]
        rows.append([name, f["frames"], f["answers_expected"], f["wrong_answers"], f["process_exits"],
                     f["connection_drops"], f.get("known_bug_answers") or None, f["normal_session_after"],
                     f["largest_frame_bytes"], f.get("longest_log_line_bytes"), f["seconds"], f["seed"]])
        categories.append(f"- {name}: {_cell(f['by_category'])}")
        categories += [f"  - wrong: {example}" for example in f.get("wrong_examples", [])]
    return [
        "A hostile CSMS (a websockets server) sends hypothesis-generated frames to the real daemon: invalid JSON, "
        "valid JSON that is not an array, wrong message type ids, unreadable message ids, wrong arity, payloads "
        "that are not objects, unknown and unsupported actions, one schema mutation of every handled request "
        "(missing or unknown fields, wrong types, values out of range or enum, huge strings and arrays, bad "
        "date-times, nesting up to 400 levels), replies nobody asked for, and valid harmless requests. Each answer "
        "is judged by an oracle written from the OCPP-J specifications and the `ocpp` library's schemas. "
        "Afterwards a normal session runs against a well-behaved CSMS.",
        "",
        f"**{frames} frames, {crashes} crashes (process exits and dropped connections), {wrong} wrong answers**: "
        f"{_goal(crashes == 0 and wrong == 0)}.",
        "",
        *_table(["run", "frames", "answers due", "wrong answers", "process exits", "connection drops",
                 "answers hitting known bugs", "normal session after", "largest frame (bytes)",
                 "longest log line (bytes)", "seconds", "seed"], rows),
        "Frames by category:", "", *categories, "",
    ]


def _hardware(figures: dict) -> list[str]:
    rows, ok = [], True
    for name, f in figures.items():
        for phase in f["phases"]:
            ok = ok and phase["recovered"]
            rows.append([f["version"], f["fault"], phase["phase"], phase["reported"], phase.get("notify_event"),
                         phase["outputs_safe"], phase.get("stop_reason"), phase["after_clear"], phase["recovered"]])
    return [
        "Faults are injected through the mock HAL control socket with nothing plugged in (idle) and during a "
        "charging session. A weld or a jammed lock can only show when the contactor or lock is told to move, so "
        "in a session they are found when the driver ends it. Outputs safe: no current offered and the contactor "
        "commanded open where charging must stop, the cable kept locked while a weld may keep the power path "
        "live. Recovered: the EVSE reports itself available again and charges a new session.",
        "",
        f"Every fault reported and recovered from: {_goal(ok)} (safety and stop reasons: see the table and the "
        "known bugs).",
        "",
        *_table(["version", "fault", "phase", "status reported (1.6 errorCode)", "2.0.1 NotifyEvent", "outputs safe",
                 "transaction end reason", "status after clearing", "recovered"], rows),
    ]


def _storage(figures: dict) -> list[str]:
    rows, ok, total = [], True, 0
    for name, f in figures.items():
        cycles, sigterm = f["cycles"], f["sigterm"]
        total += len(cycles)
        refused = sum(c["start_refused"] and c["tap_refused_on_display"] and not c["refused_tap_closed_contactor"]
                      for c in cycles)
        kept = sum(c["kept_charging"] for c in cycles)
        ok = ok and refused == kept == len(cycles) and all(c["held_after"] == 0 for c in cycles) \
            and f["duplicated"] == 0 and f["in_order"] and f["largest_gap_s"] < 1.9 \
            and sigterm["exit_status"] == 0 and sigterm["outputs_safe_logged"] and not sigterm["traceback"]
        rows.append([name, len(cycles), _runs([c["reported_s"] for c in cycles]),
                     _runs([c["cleared_s"] for c in cycles]), refused, kept, max(c["held"] for c in cycles),
                     f["records"], f["duplicated"], f["in_order"], f["largest_gap_s"], sigterm["exit_status"],
                     sigterm["outputs_safe_logged"] and not sigterm["traceback"]])
    return [
        "data_dir is a real tmpfs (8 MiB) filled to its last byte by a file while an in-process agent charges on "
        "EVSE 1 (meter values every second) and EVSE 2 waits plugged; the file is deleted after 2.5 s of charging "
        "on, and again, cycle after cycle, in one session. Each cycle: the fault must reach the CSMS without the "
        "disk (1.6 StatusNotification InternalError on connector 0, 2.0.1 NotifyEvent), a card at EVSE 2 must be "
        "refused on the display with no contactor closing, EVSE 1 must charge on with its records held in memory, "
        "and the fault must clear by itself once the space is back. Then every record of the session must reach "
        "the CSMS exactly once, in order, with no sample of the faults missing (largest gap between samples under "
        "1.9 s). Last, the real daemon charging, data_dir filled, SIGTERM.",
        "",
        f"**{total} full disks**. Goal: reported, no start, charging on, cleared by itself, delivered exactly once "
        f"in order, SIGTERM exits 0 with outputs safe: {_goal(ok)}.",
        "",
        *_table(["run", "cycles", "fill to fault reported (s)", "space back to fault cleared (s)",
                 "taps refused", "kept charging", "records held at most", "records delivered", "duplicated",
                 "in order", "largest gap between samples (s)", "SIGTERM exit status", "outputs safe, no traceback"],
                rows),
    ]


def _clock(figures: dict) -> list[str]:
    rows, ok = [], True
    for name, f in figures.items():
        for s in f["scenarios"]:
            ok = ok and max(abs(s["start_error_s"]), abs(s["end_error_s"])) <= 10 \
                and s["setting_system_time_events"] == s["expected_events"] and not s["traceback"]
            rows.append([f["version"], s["scenario"], f"{s['board_error_s'] / 86400:g} days", s["start_error_s"],
                         s["end_error_s"], f"{s['setting_system_time_events']} (expected {s['expected_events']})"])
    return [
        "The real daemon under libfaketime, its board clock 3 days wrong, as a Raspberry Pi without an RTC boots: "
        "stepped to the right time by NTP after the CSMS set the time; a session while the CSMS is unreachable "
        "before the first synchronisation, sent once it comes up; set back 3 days by a user after the "
        "synchronisation. Error: the time the CSMS received for the start (end) of the session minus the true "
        "time of plug-in (unplug).",
        "",
        f"Goal: every received time within 10 s of the truth, a correction over a minute reported once as "
        f"SettingSystemTime: {_goal(ok)}.",
        "",
        *_table(["version", "board clock", "board error", "start error (s)", "end error (s)",
                 "SettingSystemTime events"], rows),
    ]


def _security(figures: dict) -> list[str]:
    refusals = [f for name, f in figures.items() if "refusal" in name]
    rows = [[f["case"], f["version"], f["refused"], f["reason_reported"], f["attempts"], f["stayed_up"],
             "**yes**" if f["password_in_journal"] else "no"] for f in refusals]
    lines = [
        "The real daemon at log level debug against a CSMS it must refuse: a certificate from an unknown CA, for "
        "another host name, expired; a CSMS requiring a client certificate the agent does not have; a wrong Basic "
        "auth password. The same set-ups with everything right (profiles 2 and 3) must connect.",
        "",
        *_table(["case", "version", "refused", "reason in the journal", "attempts seen", "agent stayed up",
                 "password in the journal"], rows),
    ]
    controls = [f for name, f in figures.items() if name.endswith("control")]
    if controls:
        lines += [f"Controls (profile 2 and 3 with the right CA, password and client certificate connect): "
                  f"{_cell(all(c['profile_2_and_3_connect'] for c in controls))}.", ""]
    for name, f in figures.items():
        if name.startswith("secrets"):
            lines += [f"Secrets, OCPP {f['version']} (config password, its Basic auth token, a key the CSMS set "
                      f"with ChangeConfiguration AuthorizationKey / SetVariables BasicAuthPassword, a key the "
                      f"agent refused) grepped in: {_cell({p: f'{n} bytes' for p, n in f['places'].items()})}. "
                      f"Found: **{len(f['leaks'])}** {_cell(f['leaks'])}. Paths under the data directory others "
                      f"may read (umask 022): {_cell(f['world_accessible'])}.", ""]
        if name == "installed modes":
            lines += [f"Installed by `scripts/install.sh`: {_cell({k: v for k, v in f.items()})}.", ""]
    return lines


def _soak(figures: dict) -> list[str]:
    rows = []
    for name, f in figures.items():
        rows.append([name, f["seconds"], f["sessions"], f["meter_values"], f["exactly_once"], f["lost"],
                     f["duplicated"], f"{f['rss_kib_after_warmup']} → {f['rss_kib_end']} ({f['rss_growth_kib']:+d})",
                     f"{f['threads_after_warmup']} → {f['threads_late_max']}",
                     f"{f['fds_after_warmup']} → {f.get('fds_late', f['fds_late_max'])} (max {f['fds_late_max']})",
                     f"{f['log_stored_max_bytes']} / {f['log_bound_bytes']}", f["log_rows_trimmed"],
                     f"{f['log_file_bytes_half']} → {f['log_file_bytes_end']}"])
    ok = all(f["rss_growth_kib"] < 2048 and f["threads_late_max"] <= f["threads_after_warmup"]
             and f.get("fds_late", f["fds_late_max"]) <= f["fds_after_warmup"]
             and f["log_stored_max_bytes"] <= f["log_bound_bytes"]
             for f in figures.values())
    return [
        "Sessions back to back on 2 EVSEs with meter values every second, the real daemon against a CSMS; /proc "
        "sampled every 5 s. Growth is measured from the end of the warm-up (the first fifth) to the end; file "
        "descriptors compare the typical (median) count of the two windows, as one may be open for a moment. The "
        "message log's bound is set to about half of what the run logs, so it must trim.",
        "",
        f"Goal: RSS growth < 2 MiB, no growth in threads or file descriptors, the message log within its bound: "
        f"{_goal(ok)}.",
        "",
        *_table(["run", "seconds", "sessions", "meter value messages", "exactly once", "lost", "duplicated",
                 "RSS KiB", "threads", "file descriptors", "log stored / bound (bytes)", "log rows trimmed",
                 "log files at half time → end (bytes)"], rows),
    ]


def _outcomes(outcomes: list[dict]) -> list[str]:
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o["outcome"]] = counts.get(o["outcome"], 0) + 1
    lines = [f"Tests: {_cell(counts)}.", ""]
    failed = [o for o in outcomes if o["outcome"] in ("failed", "xpassed")]
    if failed:
        lines += ["Failed:", ""] + [f"- `{o['test']}`" for o in failed] + [""]
    bugs = {}
    for o in outcomes:
        if o["outcome"] == "xfailed":
            bugs.setdefault(o["reason"], []).append(o["test"].split("::")[-1])
    if bugs:
        lines += ["## Known bugs", "", "Each is pinned by a strict xfail test: it fails once the bug is fixed, so "
                  "the marker goes with the fix.", ""]
        for reason, tests in bugs.items():
            lines.append(f"- {reason} (`{'`, `'.join(tests)}`)")
        lines.append("")
    return lines


def render(data: dict) -> str:
    """The Markdown page for one run's figures."""
    env, parts = data["environment"], data["parts"]
    started = datetime.fromtimestamp(data["started"], timezone.utc)
    minutes = (data["finished"] - data["started"]) / 60
    lines = [
        "# Reliability, security and fault injection",
        "",
        "<!-- Generated by `make reliability` (tests/reliability/report.py) from the figures of one run. "
        "Do not edit by hand. -->",
        "",
        f"Run of {started:%Y-%m-%d %H:%M} UTC, {minutes:.0f} minutes, agent revision {env['agent_revision']}.",
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['memory']} RAM, {env['architecture']}, {env['os']}, "
        f"kernel {env['kernel']}.",
        f"Software: {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["packages"].items()) + ".",
        *([f"Note: {env['note']}."] if env.get("note") else []),  # figures merged from a partial re-run
        "",
        *_outcomes(data.get("outcomes", [])),
    ]
    sections = {"power_cuts": _power_cuts, "network_faults": _network, "fuzzing": _fuzzing,
                "hardware_faults": _hardware, "storage_faults": _storage, "clock_faults": _clock,
                "security": _security, "soak": _soak}
    for part, title in TITLES.items():
        figures = _figures(parts, part)
        if not figures:
            lines += [f"## {title}", "", "Not run.", ""]
            continue
        body = sections[part](figures)
        lines += [f"## {title}", "", *body]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """Read the figures file, write the page; 1 if there is no figures file."""
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    source = Path(argv[0])
    if not source.exists():
        sys.stderr.write(f"no figures at {source}: run `make reliability`\n")
        return 1
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    out.write_text(render(json.loads(source.read_text())))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
