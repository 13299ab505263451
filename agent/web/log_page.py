"""Server-rendered ``/log``: the filter form (found by its labels) and the rows, newest first.

The rows are rendered here only: for the first page, and as fragments (``/log/rows``) that the
browser's script swaps in when a filter changes, or puts on top as new frames arrive.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

from agent.runtime.message_log import CALL, CALLERROR, CALLRESULT
from agent.web.logdb import PAGE_SIZE, LoggedRow
from agent.web.pages import _e, layout, local_time

TYPE_NAMES = {CALL: "CALL", CALLRESULT: "CALLRESULT", CALLERROR: "CALLERROR"}
FILTER_KEYS = ("action", "direction", "q", "since", "until")
_DATETIME_LOCAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?")


def filter_args(params) -> dict[str, str]:
    """The non-empty filter parameters of a request, for links that keep them."""
    return {key: params[key] for key in FILTER_KEYS if params.get(key)}


def log_page(rows: list[LoggedRow], *, actions: list[str], params, before: int | None) -> str:
    """The whole ``/log`` page: filters, download link, table, pager."""
    args = filter_args(params)
    older = older_href(rows, args)
    pager = f'<a id="older" href="{_e(older)}">Older</a>' if older else '<a id="older" hidden href="">Older</a>'
    if before is not None:
        pager = f'<a href="/log?{_e(urlencode(args))}">Newest</a> ' + pager
    body = f"""{_filters(actions, params)}
<p class="tools"><a id="download" href="/api/log.jsonl?{_e(urlencode(args))}" download="ocpp-log.jsonl">Download \
JSON lines</a> <span class="hint">{'Older frames' if before is not None else 'Newest first; new frames appear by themselves'}</span></p>
<div class="scroll"><table class="log">
<thead><tr><th>Time</th><th>Direction</th><th>Action</th><th>Message type</th><th>Frame</th></tr></thead>
<tbody id="log-rows" data-live="{'no' if before is not None else 'yes'}">{log_rows(rows)}</tbody>
</table></div>
<p class="pager">{pager}</p>"""
    return layout("Message log", body, path="/log")


def older_href(rows: list[LoggedRow], args: dict[str, str]) -> str | None:
    """The link to the next older page, when this page is full."""
    if len(rows) < PAGE_SIZE:
        return None
    return "/log?" + urlencode({**args, "before": rows[-1].id})


def _filters(actions: list[str], params) -> str:
    chosen = params.get("action") or ""
    options = ['<option value="">all</option>'] + [
        f'<option value="{_e(a)}"{" selected" if a.lower() == chosen.lower() else ""}>{_e(a)}</option>' for a in actions]
    if chosen and chosen.lower() not in {a.lower() for a in actions}:
        options.append(f'<option value="{_e(chosen)}" selected>{_e(chosen)}</option>')
    direction = params.get("direction") or ""
    directions = "".join(f'<option value="{value}"{" selected" if value == direction else ""}>{name}</option>'
                         for value, name in (("", "all"), ("in", "in"), ("out", "out")))
    return f"""<form id="filters" class="filters" method="get" action="/log">
<div><label for="f-action">Action</label><select id="f-action" name="action">{"".join(options)}</select></div>
<div><label for="f-direction">Direction</label><select id="f-direction" name="direction">{directions}</select></div>
<div><label for="f-q">Search</label><input id="f-q" name="q" type="search" value="{_e(params.get('q'))}"></div>
<div><label for="f-since">From</label><input id="f-since" name="since" type="datetime-local" step="1" \
value="{_e(_as_local_input(params.get('since')))}"></div>
<div><label for="f-until">To</label><input id="f-until" name="until" type="datetime-local" step="1" \
value="{_e(_as_local_input(params.get('until')))}"></div>
<div class="apply"><button type="submit">Apply</button></div>
</form>"""


def _as_local_input(text: str | None) -> str:
    """A ``since``/``until`` value a datetime-local input can show (an age such as 10m it cannot)."""
    return text if text and _DATETIME_LOCAL.fullmatch(text) else ""


def log_rows(rows: list[LoggedRow]) -> str:
    """The ``<tr>`` of each frame, each with its JSON behind a ``JSON`` disclosure."""
    return "".join(_row(row) for row in rows)


def _row(row: LoggedRow) -> str:
    frame = row.frame
    kind = TYPE_NAMES.get(frame.message_type, "—")
    return (f'<tr data-id="{row.id}"><td><time>{_e(local_time(frame.timestamp, ms=True))}</time></td>'
            f'<td class="dir-{_e(frame.direction)}">{_e(frame.direction)}</td><td>{_e(frame.action or "—")}</td>'
            f'<td>{kind}</td><td><details><summary>JSON</summary><pre>{_e(pretty(frame.frame))}</pre></details>'
            f"</td></tr>")


def pretty(text: str) -> str:
    """The frame pretty-printed; a frame that is not JSON as it was logged."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return text
