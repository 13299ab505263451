"""The body of ``ocpp-agent status``: the running agent's live state, read from its status socket.

The command line (argparse) lives in ``agent/cli.py``. By default a summary for people (the CSMS
connection, then per EVSE its status, power, energy, transaction and faults); ``--json`` prints the
SNAPSHOT as it comes (the object ``GET /api/status`` serves). Exit 2 when no agent answers.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from agent.status.client import AgentNotRunning, read_snapshot

EXIT_OK, EXIT_NO_AGENT = 0, 2


def run_status_command(*, data_dir: Path | str, as_json: bool = False, timeout: float = 2.0,
                       out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print the state of the agent whose ``data_dir`` this is; 0, or 2 when no agent is running."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        status = read_snapshot(data_dir, timeout=timeout)
    except AgentNotRunning as exc:
        print(f"ocpp-agent status: {exc}", file=err)
        return EXIT_NO_AGENT
    if as_json:
        print(json.dumps(status, indent=2), file=out)
    else:
        print(render_status(status), file=out)
    return EXIT_OK


def render_status(status: dict) -> str:
    """The SNAPSHOT as a few aligned lines for a person."""
    connection = "Connected" if status.get("connected") else "Not connected"
    since = _local_time(status.get("connected_since"))
    lines = [f"Station {status.get('station_id')}, OCPP {status.get('ocpp_version')}",
             f"  CSMS         {connection}: {status.get('csms_url')}" + (f" (since {since})" if since else "")]
    if status.get("display"):
        lines.append(f"  display      {_shorten(status['display'])}")
    for evse in status.get("evses", []):
        lines += ["", f"EVSE {evse.get('id')}: {evse.get('status') or 'unknown'}",
                  f"  power        {_kilo(evse.get('power_W'), 'kW', 2)}",
                  f"  energy       {_kilo(evse.get('energy_Wh'), 'kWh', 3)}",
                  f"  transaction  {evse.get('transaction_id') if evse.get('transaction_id') is not None else 'none'}",
                  f"  faults       {', '.join(evse.get('faults') or []) or 'none'}"]
        if evse.get("meter_Wh") is not None:
            lines.append(f"  meter        {_kilo(evse['meter_Wh'], 'kWh', 3)}")
        if evse.get("current_limit_A") is not None:
            lines.append(f"  offered      {evse['current_limit_A']:g} A")
    return "\n".join(lines)


def _kilo(value, unit: str, digits: int) -> str:
    """W or Wh as kW or kWh; a missing value (no reading, no transaction) as "-"."""
    return "-" if value is None else f"{value / 1000:.{digits}f} {unit}"


def _local_time(iso: str | None) -> str | None:
    """An ISO 8601 UTC time as the board's local clock time, as `ocpp-agent log` shows times."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    except ValueError:
        return iso


def _shorten(text: str, width: int = 60) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= width else one_line[:width - 1] + "…"
