"""`ocpp-agent pics`: the implementation statement, read from the adapters' handler tables.

A CSMS-initiated message is supported when the adapter has an @on handler for
it; a station-initiated one when the adapter declares it in ``sends``. Nothing
here is maintained by hand, so the statement cannot drift from the code.
"""

from __future__ import annotations

from agent.protocol import adapter_class
from agent.protocol.common.catalog import CSMS, STATION, messages


def support_table(ocpp_version: str) -> list[dict]:
    """One row per message: action, initiator, profile, supported (bool)."""
    adapter = adapter_class(ocpp_version)
    handled = _handled_actions(adapter)
    rows = []
    for action, initiator, profile in messages(ocpp_version):
        if initiator == CSMS:
            supported = action in handled
        elif initiator == STATION:
            supported = action in adapter.sends
        else:
            supported = action in handled and action in adapter.sends
        rows.append({"action": action, "initiator": initiator, "profile": profile, "supported": supported,
                     "why_not": None if supported else getattr(adapter, "not_offered", {}).get(action)})
    return rows


def _handled_actions(adapter) -> set[str]:
    actions = set()
    for name in dir(adapter):
        action = getattr(getattr(adapter, name, None), "_on_action", None)
        if action is not None:
            actions.add(str(getattr(action, "value", action)))
    return actions


def render_pics(ocpp_version: str) -> str:
    """The statement as a Markdown table, with a count per profile."""
    rows = support_table(ocpp_version)
    lines = [
        f"# ocpp-agent implementation statement: OCPP {ocpp_version}",
        "",
        "| Message | Initiated by | Profile / functional block | Supported |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['action']} | {r['initiator']} | {r['profile']} | {_support(r)} |" for r in rows]
    done = sum(r["supported"] for r in rows)
    lines += ["", f"{done} of {len(rows)} messages supported. A CSMS request marked \"no\" is answered with a "
              "CALLERROR NotSupported; the station never sends a message marked \"no\"."]
    return "\n".join(lines)


def _support(row: dict) -> str:
    if row["supported"]:
        return "yes"
    return f"no ({row['why_not']})" if row["why_not"] else "no"
