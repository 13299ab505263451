"""Server-rendered HTML of the dashboard: the layout, the live status, sessions and configuration.

Plain Python string templates: every value goes through ``html.escape`` (``_e``), no template engine
and no JavaScript build. The live status section is rendered here only, both for the first page and
for every server-sent event, so the browser's script just swaps it in.
"""

from __future__ import annotations

import html
import time
from datetime import datetime

from agent.web.live import HISTORY_S

TITLE = "ocpp-agent"
NAV = (("/", "Status"), ("/log", "Log"), ("/sessions", "Sessions"), ("/config", "Configuration"))
CHART_W, CHART_H = 300, 60


def _e(value) -> str:
    """Escaped text of any value (None as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def local_time(timestamp: float, *, ms: bool = False) -> str:
    """The station's local clock time, as installers read it on site."""
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="milliseconds" if ms else "seconds")


def layout(title: str, body: str, *, path: str) -> str:
    """A whole page: head (viewport for phones, our CSS and script), navigation, ``body``."""
    current = ' aria-current="page"'
    links = "".join(f'<a href="{href}"{current if href == path else ""}>{_e(name)}</a>' for href, name in NAV)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · {TITLE}</title>
<link rel="stylesheet" href="/static/style.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header><span class="brand">{TITLE}</span><nav>{links}</nav></header>
<main>
<h1>{_e(title)}</h1>
{body}
</main>
</body>
</html>
"""


# ------------------------------------------------------------------ status


def status_page(hub) -> str:
    """``/``: the live section, which ``app.js`` keeps current from ``/events``."""
    return layout("Station status", f'<div id="live" data-events="/events">{live_section(hub)}</div>', path="/")


def live_section(hub, *, now: float | None = None) -> str:
    """The connection and one card per EVSE, or the news that no agent runs."""
    state = hub.state()
    if not state["running"]:
        return (f'<section class="card down" role="status"><h2>Agent not running</h2>'
                f'<p>The agent is not running: no live status. This page recovers by itself when it starts.</p>'
                f'<p class="detail">{_e(state["error"])}</p></section>')
    status = state["status"]
    now = time.time() if now is None else now
    cards = "".join(_evse_card(evse, hub.power_points(evse.get("id"), now=now), now) for evse in status.get("evses", []))
    return _connection(status) + f'<div class="cards">{cards}</div>'


def _connection(status: dict) -> str:
    connected = bool(status.get("connected"))
    since = status.get("connected_since")
    display = status.get("display")
    rows = [("CSMS", "Connected" if connected else "Not connected"), ("URL", status.get("csms_url")),
            ("OCPP version", status.get("ocpp_version")), ("Connected since", _iso_local(since) if since else "—"),
            ("Station", status.get("station_id"))]
    if display:
        rows.append(("Display", display))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    state = "up" if connected else "down"
    return f'<section class="card connection {state}" role="status"><h2>CSMS connection</h2><dl>{items}</dl></section>'


def _evse_card(evse: dict, points: list[tuple[float, float]], now: float) -> str:
    faults = evse.get("faults") or []
    rows = (
        ("Status", evse.get("status") or "—"),
        ("Power", _kilo(evse.get("power_W"), "kW", 2)),
        ("Energy", _kilo(evse.get("energy_Wh"), "kWh", 3)),
        ("Transaction", evse.get("transaction_id") or "none"),
        ("Faults", ", ".join(faults) if faults else "none"),
    )
    items = "".join(f'<dt>{_e(k)}</dt><dd data-field="{_e(k.lower())}">{_e(v)}</dd>' for k, v in rows)
    css = "card evse faulted" if faults else "card evse"
    return (f'<section class="{css}" data-evse="{_e(evse.get("id"))}"><h2>EVSE {_e(evse.get("id"))}</h2>'
            f'<dl>{items}</dl>{power_chart(points, now=now)}</section>')


def _kilo(value, unit: str, digits: int) -> str:
    if not isinstance(value, (int, float)):
        return "—"
    return f"{value / 1000:.{digits}f} {unit}"


def _iso_local(text: str) -> str:
    try:
        return local_time(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return text


def power_chart(points: list[tuple[float, float]], *, now: float) -> str:
    """An inline SVG step chart of the power over the last 15 minutes (no script needed to draw it)."""
    start = now - HISTORY_S
    top = max([1000.0, *(watts for _, watts in points)])
    coords: list[str] = []
    last = None
    for moment, watts in points:
        x = (max(moment, start) - start) / HISTORY_S * CHART_W
        y = CHART_H - watts / top * (CHART_H - 4)
        if last is not None:
            coords.append(f"{x:.1f},{last:.1f}")  # hold the previous value until this change: a step
        coords.append(f"{x:.1f},{y:.1f}")
        last = y
    if last is not None:
        coords.append(f"{CHART_W},{last:.1f}")
    line = f'<polyline points="{" ".join(coords)}"/>' if coords else ""
    label = f"Power, last 15 minutes (scale 0 to {top / 1000:.1f} kW)"
    return (f'<figure class="chart"><svg viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{_e(label)}">'
            f'<title>{_e(label)}</title><line x1="0" y1="{CHART_H}" x2="{CHART_W}" y2="{CHART_H}"/>{line}</svg>'
            f'<figcaption>Power, last 15 min (max {top / 1000:.1f} kW)</figcaption></figure>')


# ------------------------------------------------------------------ sessions and configuration


def sessions_page(sessions: list[dict]) -> str:
    """``/sessions``: the transactions of the journal, newest first."""
    if not sessions:
        return layout("Sessions", "<p>No transactions recorded yet.</p>", path="/sessions")
    head = ("Start", "Stop", "Duration", "Energy", "Token", "Stop reason", "EVSE", "Transaction", "CSMS acknowledged")
    rows = "".join(_session_row(s) for s in sessions)
    table = (f'<div class="scroll"><table><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
             f"<tbody>{rows}</tbody></table></div>")
    return layout("Sessions", table, path="/sessions")


def _session_row(session: dict) -> str:
    start = datetime.fromisoformat(session["started_at"].replace("Z", "+00:00")).timestamp()
    stop = session["stopped_at"]
    stop_text = local_time(datetime.fromisoformat(stop.replace("Z", "+00:00")).timestamp()) if stop else "running"
    duration = _duration(session["duration_s"]) if session["duration_s"] is not None else "—"
    acknowledged = "yes" if session["acknowledged"] else "no: " + ", ".join(session["pending"]) + " pending"
    cells = (local_time(start), stop_text, duration, f'{session["energy_Wh"] / 1000:.3f} kWh',
             session["token"] or "—", session["stop_reason"] or "—", session["evse_id"], session["transaction_id"],
             acknowledged)
    return "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def config_page(*, source: str, config_pairs: list[tuple[str, str]], settings: list[tuple[str, str]],
                ocpp_version: str) -> str:
    """``/config``: the file as loaded and the OCPP settings in force, read-only, secrets as ``***``."""
    body = (f"<p>Read-only. Secrets are shown as <code>***</code>. File: <code>{_e(source)}</code></p>"
            f"<h2>Configuration file</h2>{_pairs_table(('Key', 'Value'), config_pairs)}"
            f"<h2>OCPP settings ({_e(ocpp_version)})</h2>{_pairs_table(('Setting', 'Value'), settings)}")
    return layout("Configuration", body, path="/config")


def _pairs_table(head: tuple[str, str], pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><td><code>{_e(k)}</code></td><td><code>{_e(v)}</code></td></tr>" for k, v in pairs)
    return (f'<div class="scroll"><table><thead><tr><th>{head[0]}</th><th>{head[1]}</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def error_page(status: int, message: str) -> str:
    """A short page for a bad request on an HTML route."""
    return layout(f"Error {status}", f"<p>{_e(message)}</p>", path="")
